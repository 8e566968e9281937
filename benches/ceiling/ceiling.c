/*
 * Instruction ceilings of the AVX2 kernels on the machine this runs on.
 *
 * Each loop is the inner loop of one kernel's tile (see
 * src/gemm/x86_64/avx2.rs and avx2_u7.rs), or a variant of it, with every
 * load hitting the same L1 lines, so it measures the core's throughput for that instruction mix
 * and nothing else: no packing, no epilogue, no cache misses. A kernel can
 * approach, never pass, its loop's figure.
 *
 * The last two loops are the GEMV's instead: they read a weight-sized
 * buffer (16 MiB, the int8 weights of 1×4096×4096; $QLINEAR_STREAM_MIB to
 * change) in order, over and over, with one vpaddb per load and nothing
 * else, the second also prefetching 8 KiB ahead as the kernels do. A GEMV
 * does 2 operations per weight byte, so this is what streaming the weights
 * alone allows, in GOPS: the figure to hold the GEMV against. It is a plain
 * loop, not a proof: a kernel timed in a faster minute can come out above
 * it.
 *
 * GOPS = 2 · multiply-adds / s over 101 rounds of short bursts: median, best,
 * and the median ratio to the first loop measured in the same round.
 * Build and run: benches/ceiling/run.sh (gcc; not part of CI).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec + t.tv_nsec * 1e-9;
}

static int8_t w_i8[64] __attribute__((aligned(64)));
static int16_t w_i16[32] __attribute__((aligned(64)));
static int32_t a_rows[6][16] __attribute__((aligned(64)));

#define CLOBBER                                                                \
  "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8",      \
      "xmm9", "xmm10", "xmm11", "xmm12", "xmm13", "xmm14", "xmm15", "memory"

#define ZERO8                                                                  \
  "vpxor %%ymm0,%%ymm0,%%ymm0\n vpxor %%ymm1,%%ymm1,%%ymm1\n"                  \
  "vpxor %%ymm2,%%ymm2,%%ymm2\n vpxor %%ymm3,%%ymm3,%%ymm3\n"                  \
  "vpxor %%ymm4,%%ymm4,%%ymm4\n vpxor %%ymm5,%%ymm5,%%ymm5\n"                  \
  "vpxor %%ymm6,%%ymm6,%%ymm6\n vpxor %%ymm7,%%ymm7,%%ymm7\n"                  \
  "vpcmpeqw %%ymm13,%%ymm13,%%ymm13\n vpsrlw $15,%%ymm13,%%ymm13\n"

/* One row of the i16 kernel: broadcast (x[k], x[k+1]), two vpmaddwd, two
 * vpaddd. */
#define I16_ROW(off, acc_lo, acc_hi)                                           \
  "vpbroadcastd " off "(%[a]),%%ymm10\n"                                       \
  "vpmaddwd %%ymm8,%%ymm10,%%ymm11\n vpaddd %%ymm" acc_lo ",%%ymm11,%%ymm" acc_lo "\n" \
  "vpmaddwd %%ymm9,%%ymm10,%%ymm10\n vpaddd %%ymm" acc_hi ",%%ymm10,%%ymm" acc_hi "\n"

#define I16_ROWS                                                               \
  I16_ROW("0", "0", "1") I16_ROW("64", "2", "3") I16_ROW("128", "4", "5")       \
  I16_ROW("192", "6", "7")

/* One row of the 7-bit kernel: broadcast x[k..k+4], vpmaddubsw, vpmaddwd
 * with ones, vpaddd; twice. */
#define U7_ROW(off, acc_lo, acc_hi)                                            \
  "vpbroadcastd " off "(%[a]),%%ymm10\n"                                       \
  "vpmaddubsw %%ymm8,%%ymm10,%%ymm11\n vpmaddwd %%ymm13,%%ymm11,%%ymm11\n"    \
  "vpaddd %%ymm" acc_lo ",%%ymm11,%%ymm" acc_lo "\n"                           \
  "vpmaddubsw %%ymm9,%%ymm10,%%ymm10\n vpmaddwd %%ymm13,%%ymm10,%%ymm10\n"    \
  "vpaddd %%ymm" acc_hi ",%%ymm10,%%ymm" acc_hi "\n"

#define U7_ROWS                                                                \
  U7_ROW("0", "0", "1") U7_ROW("64", "2", "3") U7_ROW("128", "4", "5")          \
  U7_ROW("192", "6", "7")

/* A loop function: `init` once, then `body` `it` times. */
#define LOOP(name, init, body, weights)                                        \
  static void name(long it) {                                                  \
    __asm__ volatile(ZERO8 init "1:\n" body "sub $1,%[it]\n jnz 1b\n"         \
                     : [it] "+r"(it)                                           \
                     : [w] "r"(weights), [a] "r"(a_rows)                       \
                     : CLOBBER);                                               \
  }

/* Two weight vectors of 16 columns: widened from int8, or loaded as is. */
#define WIDEN_W "vpmovsxbw (%[w]),%%ymm8\n vpmovsxbw 16(%[w]),%%ymm9\n"
#define LOAD_W "vmovdqu (%[w]),%%ymm8\n vmovdqu 32(%[w]),%%ymm9\n"
#define ZERO_ROWS_5_6                                                          \
  "vpxor %%ymm12,%%ymm12,%%ymm12\n vpxor %%ymm13,%%ymm13,%%ymm13\n"            \
  "vpxor %%ymm14,%%ymm14,%%ymm14\n vpxor %%ymm15,%%ymm15,%%ymm15\n"

/* Each iteration: 4 or 6 rows × 16 columns × `depth` k (see `loops`). */
LOOP(i16_kernel, "", WIDEN_W I16_ROWS, w_i8)
LOOP(i16_kernel_6rows, ZERO_ROWS_5_6,
     WIDEN_W I16_ROWS I16_ROW("256", "12", "13") I16_ROW("320", "14", "15"), w_i8)
LOOP(i16_prewidened, "", LOAD_W I16_ROWS, w_i16)
LOOP(u7_kernel, "", LOAD_W U7_ROWS, w_i8)

/* The GEMV loop: `it` blocks of 256 bytes, read in order from a buffer of
 * `stream_len` bytes, wrapping around at its end; with 64-byte loads where
 * the CPU has AVX-512 (about 10 % faster here than 32-byte ones). */
static int8_t *stream_buf;
static long stream_len, stream_pos;

#define STREAM_LOOP(pre, reg, w)                                               \
  "1:\n" pre " vpaddb (%[p]),%%" reg "0,%%" reg "0\n"                           \
  " vpaddb " #w "(%[p]),%%" reg "1,%%" reg "1\n"                                  \
  " vpaddb 2*" #w "(%[p]),%%" reg "2,%%" reg "2\n"                                \
  " vpaddb 3*" #w "(%[p]),%%" reg "3,%%" reg "3\n"                                \
  " add $4*" #w ",%[p]\n sub $1,%[n]\n jnz 1b\n"
#define STREAM_BODY(reg, w) STREAM_LOOP("", reg, w)

/* The same, asking for the line 8 KiB ahead of each 64 bytes read, as the
 * kernels' streaming tiles do (src/gemm/x86_64/mod.rs). */
#define PF(off) " prefetcht0 8192+" #off "(%[p])\n"
#define STREAM_BODY_PF_ZMM STREAM_LOOP(PF(0) PF(64) PF(128) PF(192), "zmm", 64)
#define STREAM_BODY_PF_YMM STREAM_LOOP(PF(0) PF(64), "ymm", 32)

static void stream(long it, int prefetch) {
  static int wide = -1;
  if (wide < 0) wide = __builtin_cpu_supports("avx512bw");
  it *= 2; /* blocks of 128 bytes */
  while (it > 0) {
    long n = (stream_len - stream_pos) / 128;
    if (n > it) n = it;
    const int8_t *p = stream_buf + stream_pos;
    long left = wide ? n / 2 : n;
    if (wide && prefetch)
      __asm__ volatile(STREAM_BODY_PF_ZMM : [p] "+r"(p), [n] "+r"(left)
                       : : "xmm0", "xmm1", "xmm2", "xmm3", "memory");
    else if (wide)
      __asm__ volatile(STREAM_BODY("zmm", 64) : [p] "+r"(p), [n] "+r"(left)
                       : : "xmm0", "xmm1", "xmm2", "xmm3", "memory");
    else if (prefetch)
      __asm__ volatile(STREAM_BODY_PF_YMM : [p] "+r"(p), [n] "+r"(left)
                       : : "xmm0", "xmm1", "xmm2", "xmm3", "memory");
    else
      __asm__ volatile(STREAM_BODY("ymm", 32) : [p] "+r"(p), [n] "+r"(left)
                       : : "xmm0", "xmm1", "xmm2", "xmm3", "memory");
    stream_pos = (stream_pos + 128 * n) % stream_len;
    it -= n;
  }
}

static void stream_weights(long it) { stream(it, 0); }
static void stream_weights_prefetched(long it) { stream(it, 1); }

struct loop {
  const char *name;
  void (*run)(long);
  int depth; /* k values per iteration */
  int rows;
};

static const struct loop loops[] = {
    {"i8i8i32-avx2 tile 6x16: vpmovsxbw+vpmaddwd+vpaddd", i16_kernel_6rows, 2, 6},
    {"  same instructions, tile 4x16", i16_kernel, 2, 4},
    {"  tile 4x16, weights pre-widened: no vpmovsxbw", i16_prewidened, 2, 4},
    {"u7i8i32-avx2 tile 4x16: vpmaddubsw+vpmaddwd+vpaddd", u7_kernel, 4, 4},
    /* 256 bytes per iteration: 1 row × 16 columns × 16 k. */
    {"GEMV: the weights read in order, 2 ops/byte", stream_weights, 16, 1},
    {"  same, prefetching 8 KiB ahead", stream_weights_prefetched, 16, 1},
};

static int cmp(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

#define NLOOPS (sizeof loops / sizeof loops[0])
#define ROUNDS 101

int main(int argc, char **argv) {
  /* Short bursts, all loops round-robin, so that every loop sees the same
   * moments of a machine whose speed drifts (shared host, turbo). */
  double burst = argc > 1 ? atof(argv[1]) : 0.01;
  memset(w_i8, 1, sizeof w_i8);
  memset(w_i16, 1, sizeof w_i16);
  memset(a_rows, 1, sizeof a_rows);
  const char *mib = getenv("QLINEAR_STREAM_MIB");
  stream_len = (long)((mib ? atof(mib) : 16) * 1024 * 1024) / 256 * 256;
  if (stream_len < 256) stream_len = 256;
  stream_buf = aligned_alloc(64, stream_len);
  if (!stream_buf) return 1;
  memset(stream_buf, 1, stream_len);
  static double gops[NLOOPS][ROUNDS], ratio[NLOOPS][ROUNDS];
  long its[NLOOPS];
  for (unsigned l = 0; l < NLOOPS; l++) {
    long it = 1000;
    for (;;) { /* calibrate the burst length */
      double t0 = now();
      loops[l].run(it);
      if (now() - t0 > burst) break;
      it *= 2;
    }
    its[l] = it;
  }
  for (int r = 0; r < ROUNDS; r++) {
    for (unsigned l = 0; l < NLOOPS; l++) {
      double t0 = now();
      loops[l].run(its[l]);
      double t = now() - t0;
      gops[l][r] = 2.0 * loops[l].rows * 16 * loops[l].depth * its[l] / t / 1e9;
    }
    for (unsigned l = 0; l < NLOOPS; l++) ratio[l][r] = gops[l][r] / gops[0][r];
  }
  printf("%-52s %8s %8s %8s\n", "loop (GOPS; ratio to the first, same rounds)", "median", "best", "vs 1st");
  for (unsigned l = 0; l < NLOOPS; l++) {
    qsort(gops[l], ROUNDS, sizeof(double), cmp);
    qsort(ratio[l], ROUNDS, sizeof(double), cmp);
    printf("%-52s %8.1f %8.1f %8.2f\n", loops[l].name, gops[l][ROUNDS / 2],
           gops[l][ROUNDS - 1], ratio[l][ROUNDS / 2]);
  }
  return 0;
}
