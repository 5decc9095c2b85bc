/* gwx-syscall-cost: what a system call and a small loopback send cost on this machine, and what
 * the same sends cost when handed to the kernel together through io_uring (the way the gateway
 * writes a loop turn's client writes, gateway/batched_io.hpp). CPU time of the calling
 * thread, so other load on the machine matters less than for wall-clock figures.
 *
 *   gwx-syscall-cost [SOCKETS [ROUNDS]]     (defaults: 900 sockets, 2000 rounds)
 *
 * Prints one line per way: µs of CPU per call or per send. Each round sends 34 bytes (a
 * WebSocket frame of 32) to each socket, then drains the receivers outside the measurement. */
#define _GNU_SOURCE
#include <errno.h>
#include <liburing.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static double thread_cpu_us(void) {
  struct timespec t;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
  return (double)t.tv_sec * 1e6 + (double)t.tv_nsec / 1e3;
}

static void die(const char* what) {
  fprintf(stderr, "gwx-syscall-cost: %s: %s\n", what, strerror(errno));
  exit(1);
}

int main(int argc, char** argv) {
  const int n = argc > 1 ? atoi(argv[1]) : 900;
  const int rounds = argc > 2 ? atoi(argv[2]) : 2000;
  if (n < 1 || n > 9000 || rounds < 1) {
    fprintf(stderr, "usage: gwx-syscall-cost [SOCKETS (1..9000) [ROUNDS]]\n");
    return 2;
  }

  /* A trivial system call. */
  const int calls = 1000000;
  double t0 = thread_cpu_us();
  for (int i = 0; i < calls; ++i) {
    syscall(SYS_getppid);
  }
  printf("getppid: %.3f us per call\n", (thread_cpu_us() - t0) / calls);

  /* n loopback TCP connections: snd[i] is written, rcv[i] drained. */
  int* snd = calloc((size_t)n, sizeof *snd);
  int* rcv = calloc((size_t)n, sizeof *rcv);
  int l = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t al = sizeof a;
  if (l < 0 || bind(l, (struct sockaddr*)&a, sizeof a) != 0 || listen(l, 1024) != 0 ||
      getsockname(l, (struct sockaddr*)&a, &al) != 0) {
    die("listen on loopback");
  }
  for (int i = 0; i < n; ++i) {
    rcv[i] = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    connect(rcv[i], (struct sockaddr*)&a, sizeof a); /* EINPROGRESS; accepted below */
    snd[i] = accept(l, NULL, NULL);
    if (snd[i] < 0) {
      die("accept (raise the open-file limit for this many sockets)");
    }
    const int one = 1;
    setsockopt(snd[i], IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  }
  char msg[34];
  memset(msg, 'x', sizeof msg);
  msg[0] = (char)0x81;
  msg[1] = 32;
  char sink[65536];

  struct io_uring ring;
  int err = io_uring_queue_init(256, &ring, 0);
  if (err < 0) {
    fprintf(stderr, "gwx-syscall-cost: io_uring unavailable: %s\n", strerror(-err));
  }
  for (int way = 0; way < (err < 0 ? 1 : 2); ++way) {
    double spent = 0;
    long short_sends = 0;
    for (int r = 0; r < rounds; ++r) {
      t0 = thread_cpu_us();
      if (way == 0) {
        for (int i = 0; i < n; ++i) {
          if (syscall(SYS_sendto, snd[i], msg, sizeof msg, MSG_DONTWAIT | MSG_NOSIGNAL, NULL, 0) !=
              (long)sizeof msg) {
            ++short_sends;
          }
        }
      } else {
        for (int first = 0; first < n; first += 256) {
          const int last = first + 256 < n ? first + 256 : n;
          for (int i = first; i < last; ++i) {
            struct io_uring_sqe* sqe = io_uring_get_sqe(&ring);
            io_uring_prep_send(sqe, snd[i], msg, sizeof msg, MSG_DONTWAIT | MSG_NOSIGNAL);
          }
          io_uring_submit_and_wait(&ring, (unsigned)(last - first));
          unsigned head;
          unsigned seen = 0;
          struct io_uring_cqe* cqe;
          io_uring_for_each_cqe(&ring, head, cqe) {
            if (cqe->res != (int)sizeof msg) {
              ++short_sends;
            }
            ++seen;
          }
          io_uring_cq_advance(&ring, seen);
        }
      }
      spent += thread_cpu_us() - t0;
      for (int i = 0; i < n; ++i) {
        while (recv(rcv[i], sink, sizeof sink, MSG_DONTWAIT) > 0) {
        }
      }
    }
    printf("%s: %.3f us per send (%d sockets x %d rounds, %ld short or failed)\n",
           way == 0 ? "sendto, one call per send" : "io_uring, one call per 256 sends",
           spent / rounds / n, n, rounds, short_sends);
  }
  return 0;
}
