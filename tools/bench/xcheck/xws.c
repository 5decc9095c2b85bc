/* See xws.h. */
#define _GNU_SOURCE
#include "xws.h"

#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

int xws_parse_header(const uint8_t* p, size_t n, xws_header* h) {
  if (n < 2) {
    return XWS_NEED_MORE;
  }
  h->fin = (p[0] >> 7) & 1;
  h->rsv = (p[0] >> 4) & 7;
  h->opcode = p[0] & 0x0F;
  h->masked = (p[1] >> 7) & 1;
  uint64_t len = p[1] & 0x7F;
  size_t at = 2;
  if (len == 126) {
    if (n < 4) {
      return XWS_NEED_MORE;
    }
    len = ((uint64_t)p[2] << 8) | p[3];
    at = 4;
  } else if (len == 127) {
    if (n < 10) {
      return XWS_NEED_MORE;
    }
    if (p[2] & 0x80) {
      return XWS_BAD;
    }
    len = 0;
    for (int i = 0; i < 8; ++i) {
      len = (len << 8) | p[2 + i];
    }
    at = 10;
  }
  if (h->masked) {
    if (n < at + 4) {
      return XWS_NEED_MORE;
    }
    memcpy(h->mask, p + at, 4);
    at += 4;
  }
  h->length = len;
  h->header_size = at;
  return XWS_OK;
}

size_t xws_write_header(uint8_t* out, int opcode, uint64_t length, const uint8_t* mask) {
  const uint8_t mbit = mask ? 0x80 : 0;
  size_t at = 0;
  out[at++] = (uint8_t)(0x80 | (opcode & 0x0F));
  if (length < 126) {
    out[at++] = (uint8_t)(mbit | length);
  } else if (length <= 0xFFFF) {
    out[at++] = (uint8_t)(mbit | 126);
    out[at++] = (uint8_t)(length >> 8);
    out[at++] = (uint8_t)length;
  } else {
    out[at++] = (uint8_t)(mbit | 127);
    for (int i = 7; i >= 0; --i) {
      out[at++] = (uint8_t)(length >> (8 * i));
    }
  }
  if (mask) {
    memcpy(out + at, mask, 4);
    at += 4;
  }
  return at;
}

void xws_mask(uint8_t* p, size_t n, const uint8_t mask[4], size_t offset) {
  for (size_t i = 0; i < n; ++i) {
    p[i] ^= mask[(offset + i) & 3];
  }
}

int xws_utf8_valid(const uint8_t* p, size_t n) {
  size_t i = 0;
  while (i < n) {
    const uint8_t c = p[i];
    if (c < 0x80) {
      ++i;
      continue;
    }
    size_t extra;
    uint32_t cp;
    if (c >= 0xC2 && c <= 0xDF) {
      extra = 1;
      cp = c & 0x1F;
    } else if (c >= 0xE0 && c <= 0xEF) {
      extra = 2;
      cp = c & 0x0F;
    } else if (c >= 0xF0 && c <= 0xF4) {
      extra = 3;
      cp = c & 0x07;
    } else {
      return 0;
    }
    if (n - i <= extra) {
      return 0;
    }
    for (size_t k = 1; k <= extra; ++k) {
      if ((p[i + k] & 0xC0) != 0x80) {
        return 0;
      }
      cp = (cp << 6) | (p[i + k] & 0x3F);
    }
    if ((extra == 2 && cp < 0x800) || (extra == 3 && cp < 0x10000) || cp > 0x10FFFF ||
        (cp >= 0xD800 && cp <= 0xDFFF)) {
      return 0;
    }
    i += extra + 1;
  }
  return 1;
}

static uint32_t rol32(uint32_t x, int k) {
  return (x << k) | (x >> (32 - k));
}

static void sha1_block(uint32_t st[5], const uint8_t* b) {
  uint32_t w[80];
  for (int t = 0; t < 16; ++t) {
    w[t] = ((uint32_t)b[4 * t] << 24) | ((uint32_t)b[4 * t + 1] << 16) |
           ((uint32_t)b[4 * t + 2] << 8) | b[4 * t + 3];
  }
  for (int t = 16; t < 80; ++t) {
    w[t] = rol32(w[t - 3] ^ w[t - 8] ^ w[t - 14] ^ w[t - 16], 1);
  }
  uint32_t a = st[0], bb = st[1], c = st[2], d = st[3], e = st[4];
  for (int t = 0; t < 80; ++t) {
    uint32_t f, k;
    if (t < 20) {
      f = (bb & c) | (~bb & d);
      k = 0x5A827999;
    } else if (t < 40) {
      f = bb ^ c ^ d;
      k = 0x6ED9EBA1;
    } else if (t < 60) {
      f = (bb & c) | (bb & d) | (c & d);
      k = 0x8F1BBCDC;
    } else {
      f = bb ^ c ^ d;
      k = 0xCA62C1D6;
    }
    const uint32_t tmp = rol32(a, 5) + f + e + k + w[t];
    e = d;
    d = c;
    c = rol32(bb, 30);
    bb = a;
    a = tmp;
  }
  st[0] += a;
  st[1] += bb;
  st[2] += c;
  st[3] += d;
  st[4] += e;
}

void xws_sha1(const uint8_t* p, size_t n, uint8_t out[20]) {
  uint32_t st[5] = {0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476, 0xC3D2E1F0};
  size_t i = 0;
  for (; i + 64 <= n; i += 64) {
    sha1_block(st, p + i);
  }
  uint8_t tail[128] = {0};
  const size_t rest = n - i;
  memcpy(tail, p + i, rest);
  tail[rest] = 0x80;
  const size_t tail_len = rest + 9 <= 64 ? 64 : 128;
  const uint64_t bits = (uint64_t)n * 8;
  for (int k = 0; k < 8; ++k) {
    tail[tail_len - 1 - k] = (uint8_t)(bits >> (8 * k));
  }
  sha1_block(st, tail);
  if (tail_len == 128) {
    sha1_block(st, tail + 64);
  }
  for (int k = 0; k < 5; ++k) {
    out[4 * k] = (uint8_t)(st[k] >> 24);
    out[4 * k + 1] = (uint8_t)(st[k] >> 16);
    out[4 * k + 2] = (uint8_t)(st[k] >> 8);
    out[4 * k + 3] = (uint8_t)st[k];
  }
}

size_t xws_base64(const uint8_t* p, size_t n, char* out) {
  static const char k_alphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  size_t o = 0;
  for (size_t i = 0; i < n; i += 3) {
    const uint32_t v = ((uint32_t)p[i] << 16) | (i + 1 < n ? (uint32_t)p[i + 1] << 8 : 0) |
                       (i + 2 < n ? p[i + 2] : 0);
    out[o++] = k_alphabet[(v >> 18) & 63];
    out[o++] = k_alphabet[(v >> 12) & 63];
    out[o++] = i + 1 < n ? k_alphabet[(v >> 6) & 63] : '=';
    out[o++] = i + 2 < n ? k_alphabet[v & 63] : '=';
  }
  out[o] = '\0';
  return o;
}

void xws_accept_key(const char* key, size_t key_len, char out[29]) {
  static const char k_guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
  uint8_t buf[128];
  uint8_t digest[20];
  if (key_len > sizeof buf - (sizeof k_guid - 1)) {
    key_len = sizeof buf - (sizeof k_guid - 1);
  }
  memcpy(buf, key, key_len);
  memcpy(buf + key_len, k_guid, sizeof k_guid - 1);
  xws_sha1(buf, key_len + sizeof k_guid - 1, digest);
  xws_base64(digest, sizeof digest, out);
}

uint64_t xws_now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

double xws_proc_cpu_us(pid_t pid) {
  char path[64];
  snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
  FILE* f = fopen(path, "r");
  if (!f) {
    return -1;
  }
  char buf[1024];
  const size_t n = fread(buf, 1, sizeof buf - 1, f);
  fclose(f);
  buf[n] = '\0';
  /* The command name (field 2) may hold spaces and parentheses: fields 3.. follow the last ')'. */
  const char* p = strrchr(buf, ')');
  if (!p) {
    return -1;
  }
  unsigned long utime = 0, stime = 0;
  /* Fields 3..13 skipped, then utime (14) and stime (15). */
  if (sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &utime, &stime) != 2) {
    return -1;
  }
  const long hz = sysconf(_SC_CLK_TCK);
  return (double)(utime + stime) * 1e6 / (double)(hz > 0 ? hz : 100);
}

double xws_self_cpu_us(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1e6 +
         (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec);
}

int xws_random(void* p, size_t n) {
  uint8_t* b = p;
  while (n > 0) {
    const ssize_t got = getrandom(b, n, 0);
    if (got <= 0) {
      return -1;
    }
    b += got;
    n -= (size_t)got;
  }
  return 0;
}
