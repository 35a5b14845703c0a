/* INCRBYFLOAT and HINCRBYFLOAT add in C's `long double` and print with
 * "%.17Lf" minus trailing zeros, exactly as Redis does: with x87 80-bit
 * precision 0.1 + 0.2 prints as 0.3, which a Rust f64 cannot reproduce.
 * Rust has no long double type, so this one function is written in C. */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Parses like Redis's string2ld: the whole buffer, no leading space, no
 * overflow, not NaN. Returns 0 on success. */
static int parse_ld(const char *s, size_t len, long double *out) {
    char buf[5120];
    char *end;
    if (len == 0 || len >= sizeof(buf)) return -1;
    memcpy(buf, s, len);
    buf[len] = '\0';
    if (isspace((unsigned char)buf[0])) return -1;
    errno = 0;
    long double v = strtold(buf, &end);
    if ((size_t)(end - buf) != len) return -1;
    if (errno == ERANGE && (v == HUGE_VALL || v == -HUGE_VALL || v == 0)) return -1;
    if (isnan(v)) return -1;
    *out = v;
    return 0;
}

/* Computes base + incr and writes the human form to out.
 * Returns the length written, -1 if base is not a float, -2 if incr is not
 * a float, -3 if the result is NaN or infinite. */
int cowstore_ld_add(const char *base, size_t base_len, const char *incr,
                    size_t incr_len, char *out, size_t out_len) {
    long double a = 0, b;
    if (base != NULL && parse_ld(base, base_len, &a) != 0) return -1;
    if (parse_ld(incr, incr_len, &b) != 0) return -2;
    long double v = a + b;
    if (isnan(v) || isinf(v)) return -3;
    int l = snprintf(out, out_len, "%.17Lf", v);
    if (l < 0 || (size_t)l + 1 > out_len) return -3;
    if (strchr(out, '.') != NULL) {
        char *p = out + l - 1;
        while (*p == '0') { p--; l--; }
        if (*p == '.') l--;
    }
    if (l == 2 && out[0] == '-' && out[1] == '0') { out[0] = '0'; l = 1; }
    return l;
}
