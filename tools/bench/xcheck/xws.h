/* The pieces of RFC 6455 that gwx-xload and gwx-xecho both need, written from the RFC alone:
 * SHA-1 and base64 for the handshake's accept key, the frame header, UTF-8 validation, clocks and
 * /proc CPU time. Plain C11 + libc + Linux; nothing here comes from gwx. */
#ifndef GWX_XCHECK_XWS_H
#define GWX_XCHECK_XWS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/** Frame opcodes (RFC 6455 5.2). */
enum {
  XWS_CONT = 0x0,
  XWS_TEXT = 0x1,
  XWS_BINARY = 0x2,
  XWS_CLOSE = 0x8,
  XWS_PING = 0x9,
  XWS_PONG = 0xA
};

/** A parsed frame header. */
typedef struct {
  int fin;
  int rsv; /* the three RSV bits; must be 0 without extensions */
  int opcode;
  int masked;
  uint8_t mask[4];
  uint64_t length;    /* payload length */
  size_t header_size; /* bytes before the payload */
} xws_header;

/** Result of xws_parse_header: a header, not enough bytes yet, or a length encoding that the
 * RFC forbids (non-minimal is allowed; the most significant bit of a 64-bit length is not). */
enum { XWS_NEED_MORE = 0, XWS_OK = 1, XWS_BAD = -1 };

/** Parses the frame header at `p` (`n` bytes available). */
int xws_parse_header(const uint8_t* p, size_t n, xws_header* h);

/** Writes a frame header for `length` payload bytes (FIN set) into `out` (at most 14 bytes);
 * `mask` NULL for an unmasked (server) frame. Returns the header size. */
size_t xws_write_header(uint8_t* out, int opcode, uint64_t length, const uint8_t* mask);

/** XORs `n` bytes at `p` with `mask`, starting at mask offset `offset`. */
void xws_mask(uint8_t* p, size_t n, const uint8_t mask[4], size_t offset);

/** 1 if the `n` bytes are valid UTF-8 (RFC 3629: no overlongs, surrogates or > U+10FFFF). */
int xws_utf8_valid(const uint8_t* p, size_t n);

/** SHA-1 (FIPS 180-4) of `n` bytes into `out`. */
void xws_sha1(const uint8_t* p, size_t n, uint8_t out[20]);

/** Base64 (RFC 4648, with padding) of `n` bytes into `out`, NUL-terminated; returns its length.
 * `out` must hold 4 * ((n + 2) / 3) + 1 bytes. */
size_t xws_base64(const uint8_t* p, size_t n, char* out);

/** The Sec-WebSocket-Accept value (29 bytes with the NUL) for a Sec-WebSocket-Key. */
void xws_accept_key(const char* key, size_t key_len, char out[29]);

/** Monotonic clock in nanoseconds. */
uint64_t xws_now_ns(void);

/** utime+stime of process `pid` in microseconds, from /proc/PID/stat; -1 if unreadable. */
double xws_proc_cpu_us(pid_t pid);

/** This process's user+system CPU time in microseconds. */
double xws_self_cpu_us(void);

/** Fills `n` bytes from the kernel's random source (getrandom); 0 on success. */
int xws_random(void* p, size_t n);

#endif
