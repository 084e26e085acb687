// DNS flood for bench/cases/15-capture: the fastest query/answer traffic this machine makes, with
// recvmmsg/sendmmsg so that the generator, not the system calls, sets the pace.
//   dns-flood serve ADDR            answers every A query to ADDR:53 with one A record (198.18.x.y);
//                                   on SIGTERM/SIGINT prints {"answered":N} (answers sent) and exits
//   dns-flood query SERVER COUNT    sends COUNT distinct A queries (qN.flood.test, id N & 0xffff)
//                                   from one socket as fast as possible, reading answers as they
//                                   come and then until none came for a second; prints
//                                   {"sent":N,"seconds":S,"answers":M} (S: sending time)
// Compiled by the bench case (cc -O2); not part of the product.
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <signal.h>
#include <time.h>
#include <unistd.h>

#define BATCH 64
#define MAXMSG 512

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

static int query_message(unsigned char* m, unsigned n) {
  unsigned char* p = m;
  *p++ = (n >> 8) & 0xff; *p++ = n & 0xff;   // id
  *p++ = 0x01; *p++ = 0x00;                  // RD
  *p++ = 0; *p++ = 1; memset(p, 0, 6); p += 6;
  char label[16];
  int len = snprintf(label, sizeof label, "q%u", n);
  *p++ = (unsigned char)len; memcpy(p, label, len); p += len;
  *p++ = 5; memcpy(p, "flood", 5); p += 5;
  *p++ = 4; memcpy(p, "test", 4); p += 4;
  *p++ = 0;
  *p++ = 0; *p++ = 1; *p++ = 0; *p++ = 1;    // A IN
  return (int)(p - m);
}

static volatile sig_atomic_t stopping = 0;
static void on_stop(int sig) { (void)sig; stopping = 1; }

static int serve(const char* addr) {
  struct sigaction sa_stop = {0};
  sa_stop.sa_handler = on_stop;
  sigaction(SIGTERM, &sa_stop, NULL);
  sigaction(SIGINT, &sa_stop, NULL);
  struct timeval tick = {0, 100000};
  int fd = socket(AF_INET, SOCK_DGRAM, 0);
  int big = 8 << 20;
  setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &big, sizeof big);
  setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &big, sizeof big);
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tick, sizeof tick);
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(53)};
  inet_pton(AF_INET, addr, &sa.sin_addr);
  if (bind(fd, (struct sockaddr*)&sa, sizeof sa) != 0) { perror("bind"); return 1; }
  static unsigned char bufs[BATCH][MAXMSG];
  static struct sockaddr_in from[BATCH];
  struct mmsghdr msgs[BATCH];
  struct iovec iov[BATCH];
  unsigned answered = 0, delivered = 0;
  printf("{\"ready\":true}\n");
  fflush(stdout);
  while (!stopping) {
    for (int i = 0; i < BATCH; i++) {
      iov[i].iov_base = bufs[i]; iov[i].iov_len = MAXMSG;
      memset(&msgs[i], 0, sizeof msgs[i]);
      msgs[i].msg_hdr.msg_iov = &iov[i]; msgs[i].msg_hdr.msg_iovlen = 1;
      msgs[i].msg_hdr.msg_name = &from[i]; msgs[i].msg_hdr.msg_namelen = sizeof from[i];
    }
    int n = recvmmsg(fd, msgs, BATCH, MSG_WAITFORONE, NULL);
    if (n <= 0) continue;
    int k = 0;
    for (int i = 0; i < n; i++) {
      unsigned len = msgs[i].msg_len;
      unsigned char* m = bufs[i];
      if (len < 12 || len + 16 > MAXMSG || (m[2] & 0x80)) continue;
      m[2] |= 0x80; m[3] = 0x80;               // QR, RA
      m[6] = 0; m[7] = 1;                       // one answer
      unsigned char rr[16] = {0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0x01, 0x2c, 0, 4, 198, 18, (answered >> 8) & 0xff, answered & 0xff};
      memcpy(m + len, rr, 16);
      answered++;
      iov[k].iov_base = m; iov[k].iov_len = len + 16;
      msgs[k].msg_hdr.msg_iov = &iov[k]; msgs[k].msg_hdr.msg_iovlen = 1;
      msgs[k].msg_hdr.msg_name = &from[i]; msgs[k].msg_hdr.msg_namelen = sizeof from[i];
      k++;
    }
    for (int off = 0; off < k;) {
      int s = sendmmsg(fd, msgs + off, k - off, 0);
      if (s <= 0) break;
      off += s;
      delivered += s;
    }
  }
  printf("{\"answered\":%u}\n", delivered);
  return 0;
}

static unsigned drain_answers(int fd, int flags) {
  static unsigned char bufs[BATCH][MAXMSG];
  struct mmsghdr msgs[BATCH];
  struct iovec iov[BATCH];
  for (int i = 0; i < BATCH; i++) {
    iov[i].iov_base = bufs[i]; iov[i].iov_len = MAXMSG;
    memset(&msgs[i], 0, sizeof msgs[i]);
    msgs[i].msg_hdr.msg_iov = &iov[i]; msgs[i].msg_hdr.msg_iovlen = 1;
  }
  int n = recvmmsg(fd, msgs, BATCH, flags, NULL);
  return n > 0 ? (unsigned)n : 0;
}

static int query(const char* server, unsigned count) {
  int fd = socket(AF_INET, SOCK_DGRAM, 0);
  int big = 8 << 20;
  setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &big, sizeof big);
  setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &big, sizeof big);
  struct timeval second = {1, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &second, sizeof second);
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(53)};
  inet_pton(AF_INET, server, &sa.sin_addr);
  if (connect(fd, (struct sockaddr*)&sa, sizeof sa) != 0) { perror("connect"); return 1; }
  static unsigned char bufs[BATCH][MAXMSG];
  struct mmsghdr msgs[BATCH];
  struct iovec iov[BATCH];
  unsigned sent = 0, answers = 0;
  double t0 = now();
  while (sent < count) {
    int n = count - sent < BATCH ? (int)(count - sent) : BATCH;
    for (int i = 0; i < n; i++) {
      iov[i].iov_base = bufs[i];
      iov[i].iov_len = query_message(bufs[i], sent + i);
      memset(&msgs[i], 0, sizeof msgs[i]);
      msgs[i].msg_hdr.msg_iov = &iov[i]; msgs[i].msg_hdr.msg_iovlen = 1;
    }
    int s = sendmmsg(fd, msgs, n, 0);
    if (s > 0) sent += s;
    answers += drain_answers(fd, MSG_DONTWAIT);
  }
  double seconds = now() - t0;
  for (unsigned got; answers < sent && (got = drain_answers(fd, MSG_WAITFORONE)) > 0;) answers += got;
  printf("{\"sent\":%u,\"seconds\":%.6f,\"answers\":%u}\n", sent, seconds, answers);
  return 0;
}

int main(int argc, char** argv) {
  if (argc == 3 && strcmp(argv[1], "serve") == 0) return serve(argv[2]);
  if (argc == 4 && strcmp(argv[1], "query") == 0) return query(argv[2], (unsigned)strtoul(argv[3], NULL, 10));
  fprintf(stderr, "usage: dns-flood serve ADDR | dns-flood query SERVER COUNT\n");
  return 2;
}
