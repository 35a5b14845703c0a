//! What cowscope and its ground-truth workloads share: the kernel's own count
//! of a task's copy-on-write copies (taskstats), the truth both are held to.

pub mod taskstats;
