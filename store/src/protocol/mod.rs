//! The wire protocol: parsing requests (RESP multibulk and inline) and writing
//! replies (RESP2, or RESP3 after `HELLO 3`).

pub mod reply;
pub mod request;
