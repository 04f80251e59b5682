/* The round trip of one cache line between two threads pinned to two CPUs,
 * in ns, the best of three runs: `core_round_trip CPU_A CPU_B TRIPS`.
 * make bench-dec prints it: on a VM it tells whether the hypervisor has put
 * the two vCPUs on one die (a shared L3, ~100 ns on our EPYC) or on two
 * (~430 ns), which sets how long OpenBLAS's two threads wait on each other. */
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static _Atomic int turn __attribute__((aligned(64)));
static int cpu_b;
static long trips;

static int pin(int cpu) {
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  return pthread_setaffinity_np(pthread_self(), sizeof set, &set);
}

static void *answer(void *unused) {
  (void)unused;
  if (pin(cpu_b)) exit(2);
  for (long i = 0; i < trips; i++) {
    while (atomic_load_explicit(&turn, memory_order_acquire) != 1) {}
    atomic_store_explicit(&turn, 0, memory_order_release);
  }
  return NULL;
}

int main(int argc, char **argv) {
  if (argc != 4) {
    fprintf(stderr, "usage: %s CPU_A CPU_B TRIPS\n", argv[0]);
    return 2;
  }
  cpu_b = atoi(argv[2]);
  trips = atol(argv[3]);
  if (pin(atoi(argv[1])) || trips < 1) return 2;
  double best = 1e30;
  for (int run = 0; run < 3; run++) {
    pthread_t other;
    atomic_store(&turn, 0);
    if (pthread_create(&other, NULL, answer, NULL)) return 2;
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    for (long i = 0; i < trips; i++) {
      atomic_store_explicit(&turn, 1, memory_order_release);
      while (atomic_load_explicit(&turn, memory_order_acquire) != 0) {}
    }
    clock_gettime(CLOCK_MONOTONIC, &b);
    pthread_join(other, NULL);
    double ns = ((b.tv_sec - a.tv_sec) * 1e9 + (b.tv_nsec - a.tv_nsec)) / trips;
    if (ns < best) best = ns;
  }
  printf("%.1f\n", best);
  return 0;
}
