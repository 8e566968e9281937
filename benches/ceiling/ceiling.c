/*
 * Instruction ceilings of the SIMD kernels on the machine this runs on.
 *
 * Each compute loop is the inner loop of one kernel's tile (see
 * src/gemm/x86_64/), or a variant of it, with every load hitting the same
 * L1 lines, so it measures the core's throughput for that instruction mix
 * and nothing else: no packing, no epilogue, no cache misses. A kernel can
 * approach, never pass, its loop's figure.
 *
 *   AVX2          vpmovsxbw + vpmaddwd + vpaddd (i8i8i32-avx2), and
 *                 vpmaddubsw + vpmaddwd + vpaddd (u7i8i32-avx2)
 *   AVX-512 VNNI  vpdpbusd zmm, tile 8x32 (u8i8i32-avx512vnni)
 *   AVX-VNNI      {vex} vpdpbusd ymm, tile 6x16 (u8i8i32-avxvnni); on a CPU
 *                 with AVX-512 VNNI and VL the same loop EVEX-encoded too
 *   AMX-INT8      4 tileloadd + 4 tdpbusd, tile 32x32 (u8i8i32-amx), and
 *                 tdpbusd alone on 4 accumulator tiles
 *
 * The read loops are the GEMV's instead: they read a weight-sized buffer
 * ($QLINEAR_STREAM_MIB, a comma-separated list of sizes in MiB, default
 * 16: the int8 weights of 1×4096×4096) in order, over and over, with one
 * vpaddb (paddb without AVX2) per load and nothing else, the "prefetching"
 * twin also asking for the line 8 KiB ahead as the kernels do. Being read
 * over and over, the buffer sits wherever a layer's weights sit when the
 * layer runs over and over: in L2 or L3 if it fits. A GEMV does 2
 * operations per weight byte, so this is what streaming the weights alone
 * allows, in GOPS (and GB/s): the figure to hold the GEMV against. It is a
 * plain loop, not a proof: a kernel timed in a faster minute can come out
 * above it.
 *
 * Which loops run is decided at run time (CPUID through
 * __builtin_cpu_supports, and for AMX CPUID, XCR0 and Linux's
 * arch_prctl(ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA)); each loop is
 * compiled with its own target attribute, so one binary runs everywhere
 * and skips, with the reason, what the CPU lacks.
 *
 * GOPS = 2 · multiply-adds / s over ROUNDS rounds of short bursts, all
 * loops in turn in every round: median, best, and the median ratio to the
 * first loop measured in the same round.
 *
 *   ceiling [--json] [--rounds N] [--split N] [--start-at T] [burst seconds]
 *
 * --json prints one JSON object per loop instead of the table; --split N
 * makes each read buffer 1/N of its size (N processes at once reading the
 * weights between them), names unchanged; --start-at T waits, after
 * calibrating, until the Unix time T, and starts round r at T + r times
 * 1.25 · burst · loops, so that processes started together measure the
 * same loop at the same moment.
 *
 * Build and run: benches/ceiling/run.sh (gcc 11 or later; not part of CI).
 * benches/report.sh runs it for docs/benchmarks.md.
 */
#define _GNU_SOURCE
#include <cpuid.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec + t.tv_nsec * 1e-9;
}

static int8_t w_i8[128] __attribute__((aligned(64)));
static int16_t w_i16[32] __attribute__((aligned(64)));
static int32_t a_rows[8][16] __attribute__((aligned(64)));

#define TARGET(t) __attribute__((target(t), noinline))

#define CLOBBER                                                                \
  "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8",      \
      "xmm9", "xmm10", "xmm11", "xmm12", "xmm13", "xmm14", "xmm15", "memory"

/* ---- AVX2: the i8i8i32-avx2 and u7i8i32-avx2 kernels ------------------- */

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

/* An AVX2 loop function: `init` once, then `body` `it` times. */
#define LOOP(name, init, body, weights)                                        \
  TARGET("avx2") static void name(long it) {                                   \
    __asm__ volatile(ZERO8 init "1:\n" body "sub $1,%[it]\n jnz 1b\n"         \
                     "vzeroupper\n"                                            \
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

/* Each iteration: 4 or 6 rows × 16 columns × 2 or 4 k (see `add`). */
LOOP(i16_kernel, "", WIDEN_W I16_ROWS, w_i8)
LOOP(i16_kernel_6rows, ZERO_ROWS_5_6,
     WIDEN_W I16_ROWS I16_ROW("256", "12", "13") I16_ROW("320", "14", "15"), w_i8)
LOOP(i16_prewidened, "", LOAD_W I16_ROWS, w_i16)
LOOP(u7_kernel, "", LOAD_W U7_ROWS, w_i8)

/* ---- AVX-512 VNNI: the u8i8i32-avx512vnni kernel ------------------------ */

/* 8 rows × 32 columns × 4 k per iteration: two 64-byte weight loads, then
 * per row one broadcast and two vpdpbusd, into 16 accumulators. */
#define ZMM_ROW(off, lo, hi)                                                   \
  "vpbroadcastd " off "(%[a]),%%zmm18\n"                                       \
  "vpdpbusd %%zmm16,%%zmm18,%%zmm" lo "\n vpdpbusd %%zmm17,%%zmm18,%%zmm" hi "\n"
#define ZERO_ZMM(r) "vpxord %%zmm" r ",%%zmm" r ",%%zmm" r "\n"

TARGET("avx512f,avx512bw,avx512vnni") static void vnni_zmm_8x32(long it) {
  __asm__ volatile(
      ZERO_ZMM("0") ZERO_ZMM("1") ZERO_ZMM("2") ZERO_ZMM("3") ZERO_ZMM("4")
      ZERO_ZMM("5") ZERO_ZMM("6") ZERO_ZMM("7") ZERO_ZMM("8") ZERO_ZMM("9")
      ZERO_ZMM("10") ZERO_ZMM("11") ZERO_ZMM("12") ZERO_ZMM("13")
      ZERO_ZMM("14") ZERO_ZMM("15")
      "1:\n"
      "vmovdqu64 (%[w]),%%zmm16\n vmovdqu64 64(%[w]),%%zmm17\n"
      ZMM_ROW("0", "0", "1") ZMM_ROW("64", "2", "3") ZMM_ROW("128", "4", "5")
      ZMM_ROW("192", "6", "7") ZMM_ROW("256", "8", "9")
      ZMM_ROW("320", "10", "11") ZMM_ROW("384", "12", "13")
      ZMM_ROW("448", "14", "15")
      "sub $1,%[it]\n jnz 1b\n vzeroupper\n"
      : [it] "+r"(it)
      : [w] "r"(w_i8), [a] "r"(a_rows)
      : CLOBBER, "xmm16", "xmm17", "xmm18");
}

/* ---- vpdpbusd ymm: the u8i8i32-avxvnni kernel --------------------------- */

/* 6 rows × 16 columns × 4 k per iteration, 12 accumulators; `pfx` picks the
 * encoding: {vex} is AVX-VNNI (the kernel's), {evex} AVX-512 VNNI + VL
 * (written %{ %} in extended asm, where a brace is special). */
#define YMM_ROW(pfx, off, lo, hi)                                              \
  "vpbroadcastd " off "(%[a]),%%ymm14\n"                                       \
  pfx " vpdpbusd %%ymm12,%%ymm14,%%ymm" lo "\n"                                \
  pfx " vpdpbusd %%ymm13,%%ymm14,%%ymm" hi "\n"
#define YMM_LOOP(pfx)                                                          \
  __asm__ volatile(                                                            \
      ZERO8 "vpxor %%ymm8,%%ymm8,%%ymm8\n vpxor %%ymm9,%%ymm9,%%ymm9\n"        \
      "vpxor %%ymm10,%%ymm10,%%ymm10\n vpxor %%ymm11,%%ymm11,%%ymm11\n"        \
      "1:\n"                                                                   \
      "vmovdqu (%[w]),%%ymm12\n vmovdqu 32(%[w]),%%ymm13\n"                    \
      YMM_ROW(pfx, "0", "0", "1") YMM_ROW(pfx, "64", "2", "3")                 \
      YMM_ROW(pfx, "128", "4", "5") YMM_ROW(pfx, "192", "6", "7")              \
      YMM_ROW(pfx, "256", "8", "9") YMM_ROW(pfx, "320", "10", "11")            \
      "sub $1,%[it]\n jnz 1b\n vzeroupper\n"                                   \
      : [it] "+r"(it)                                                          \
      : [w] "r"(w_i8), [a] "r"(a_rows)                                         \
      : CLOBBER)

TARGET("avx2,avxvnni") static void vnni_ymm_vex(long it) { YMM_LOOP("%{vex%}"); }
TARGET("avx512f,avx512vl,avx512vnni") static void vnni_ymm_evex(long it) {
  YMM_LOOP("%{evex%}");
}

/* ---- AMX: the u8i8i32-amx kernel ---------------------------------------- */

/* ldtilecfg's operand: palette 1, tiles 0–7 of 16 rows × 64 bytes, as in
 * src/gemm/x86_64/amx.rs. */
static struct {
  uint8_t palette, start_row, reserved[14];
  uint16_t colsb[16];
  uint8_t rows[16];
} __attribute__((aligned(64))) tile_config = {
    1, 0, {0}, {64, 64, 64, 64, 64, 64, 64, 64}, {16, 16, 16, 16, 16, 16, 16, 16}};

/* Two activation tiles (16 rows × 64 bytes each) and one weight panel of
 * 16 k-quads × 128 bytes (two weight tiles side by side): 4 KiB, in L1. */
static uint8_t amx_a[2 * 16 * 64] __attribute__((aligned(64)));
static int8_t amx_w[16 * 128] __attribute__((aligned(64)));

/* One k-step of the kernel's 32×32 tile per iteration: load both weight
 * tiles and both activation tiles, four tdpbusd (AT&T operand order:
 * weights, activations, accumulator). */
TARGET("amx-tile,amx-int8") static void amx_tile_32x32(long it) {
  __asm__ volatile(
      "ldtilecfg %[cfg]\n"
      "tilezero %%tmm4\n tilezero %%tmm5\n tilezero %%tmm6\n tilezero %%tmm7\n"
      "1:\n"
      "tileloadd (%[w],%[ws],1),%%tmm2\n"
      "tileloadd 64(%[w],%[ws],1),%%tmm3\n"
      "tileloadd (%[a],%[as],1),%%tmm0\n"
      "tdpbusd %%tmm2,%%tmm0,%%tmm4\n tdpbusd %%tmm3,%%tmm0,%%tmm5\n"
      "tileloadd 1024(%[a],%[as],1),%%tmm1\n"
      "tdpbusd %%tmm2,%%tmm1,%%tmm6\n tdpbusd %%tmm3,%%tmm1,%%tmm7\n"
      "sub $1,%[it]\n jnz 1b\n"
      "tilerelease\n"
      : [it] "+r"(it)
      : [cfg] "m"(tile_config), [w] "r"(amx_w), [a] "r"(amx_a),
        [ws] "r"(128L), [as] "r"(64L)
      : "memory");
}

/* The same four tdpbusd per iteration, their operands loaded once: the
 * multiplier's own rate. */
TARGET("amx-tile,amx-int8") static void amx_tdpbusd_only(long it) {
  __asm__ volatile(
      "ldtilecfg %[cfg]\n"
      "tileloadd (%[w],%[ws],1),%%tmm2\n"
      "tileloadd 64(%[w],%[ws],1),%%tmm3\n"
      "tileloadd (%[a],%[as],1),%%tmm0\n"
      "tileloadd 1024(%[a],%[as],1),%%tmm1\n"
      "tilezero %%tmm4\n tilezero %%tmm5\n tilezero %%tmm6\n tilezero %%tmm7\n"
      "1:\n"
      "tdpbusd %%tmm2,%%tmm0,%%tmm4\n tdpbusd %%tmm3,%%tmm0,%%tmm5\n"
      "tdpbusd %%tmm2,%%tmm1,%%tmm6\n tdpbusd %%tmm3,%%tmm1,%%tmm7\n"
      "sub $1,%[it]\n jnz 1b\n"
      "tilerelease\n"
      : [it] "+r"(it)
      : [cfg] "m"(tile_config), [w] "r"(amx_w), [a] "r"(amx_a),
        [ws] "r"(128L), [as] "r"(64L)
      : "memory");
}

/* ---- reading the weights: the GEMV ------------------------------------- */

/* `n` blocks of 256 bytes from `p` in order, one add per load; `PF` asks
 * for each line 8 KiB ahead (src/gemm/x86_64/mod.rs). */
#define PF4                                                                    \
  "prefetcht0 8192(%[p])\n prefetcht0 8256(%[p])\n"                            \
  "prefetcht0 8320(%[p])\n prefetcht0 8384(%[p])\n"
#define READ_FN(name, target, pf, body, tail, clob...)                         \
  TARGET(target) static void name(const int8_t *p, long n) {                   \
    __asm__ volatile("1:\n" pf body "add $256,%[p]\n sub $1,%[n]\n jnz 1b\n"   \
                     tail                                                      \
                     : [p] "+r"(p), [n] "+r"(n)                                \
                     :                                                         \
                     : clob, "memory");                                        \
  }
#define Z(off, r) "vpaddb " off "(%[p]),%%zmm" r ",%%zmm" r "\n"
#define Y(off, r) "vpaddb " off "(%[p]),%%ymm" r ",%%ymm" r "\n"
#define X(off, r) "paddb " off "(%[p]),%%xmm" r "\n"
#define ZMM_BODY Z("0", "0") Z("64", "1") Z("128", "2") Z("192", "3")
#define YMM_BODY                                                               \
  Y("0", "0") Y("32", "1") Y("64", "2") Y("96", "3") Y("128", "4")             \
  Y("160", "5") Y("192", "6") Y("224", "7")
#define XMM_BODY                                                               \
  X("0", "0") X("16", "1") X("32", "2") X("48", "3") X("64", "4")              \
  X("80", "5") X("96", "6") X("112", "7") X("128", "8") X("144", "9")          \
  X("160", "10") X("176", "11") X("192", "12") X("208", "13")                  \
  X("224", "14") X("240", "15")

READ_FN(read_zmm, "avx512f,avx512bw", "", ZMM_BODY, "vzeroupper\n", "xmm0", "xmm1", "xmm2", "xmm3")
READ_FN(read_zmm_pf, "avx512f,avx512bw", PF4, ZMM_BODY, "vzeroupper\n", "xmm0", "xmm1", "xmm2",
        "xmm3")
READ_FN(read_ymm, "avx2", "", YMM_BODY, "vzeroupper\n", CLOBBER)
READ_FN(read_ymm_pf, "avx2", PF4, YMM_BODY, "vzeroupper\n", CLOBBER)
READ_FN(read_xmm, "sse2", "", XMM_BODY, "", CLOBBER)
READ_FN(read_xmm_pf, "sse2", PF4, XMM_BODY, "", CLOBBER)

/* ---- the loops ----------------------------------------------------------- */

struct loop {
  const char *id;          /* machine-readable, stable */
  char name[64];           /* for humans */
  const char *instruction; /* what it measures */
  const char *kernel;      /* the qlinear kernel it bounds, or "" */
  const char *skip;        /* why it does not run here, or NULL */
  void (*fn)(long);        /* a compute loop */
  double macs;             /* multiply-adds per iteration of `fn` */
  /* a read loop: */
  void (*read)(const int8_t *, long);
  double mib; /* the weights it stands for */
  int8_t *buf;
  long len, pos;
  long its;
};

#define MAX_LOOPS 64
static struct loop loops[MAX_LOOPS];
static unsigned nloops;

static struct loop *add(const char *id, const char *name, const char *instruction,
                        const char *kernel, const char *skip) {
  struct loop *l = &loops[nloops++];
  l->id = id;
  snprintf(l->name, sizeof l->name, "%s", name);
  l->instruction = instruction;
  l->kernel = kernel;
  l->skip = skip;
  return l;
}

static void add_compute(const char *id, const char *name, const char *instruction,
                        const char *kernel, const char *skip, void (*fn)(long),
                        double macs) {
  struct loop *l = add(id, name, instruction, kernel, skip);
  l->fn = fn;
  l->macs = macs;
}

/* 256 bytes per iteration, wrapping around at the buffer's end. */
static void run_read(struct loop *l, long it) {
  while (it > 0) {
    long n = (l->len - l->pos) / 256;
    if (n > it) n = it;
    l->read(l->buf + l->pos, n);
    l->pos = (l->pos + 256 * n) % l->len;
    it -= n;
  }
}

static void run(struct loop *l, long it) {
  if (l->fn)
    l->fn(it);
  else
    run_read(l, it);
}

/* GOPS of `it` iterations in `t` seconds; reads count 2 per byte. */
static double gops(const struct loop *l, long it, double t) {
  return (l->fn ? 2.0 * l->macs : 2.0 * 256) * it / t / 1e9;
}

/* ---- what the CPU and OS allow ------------------------------------------ */

static int xcr0_has(uint64_t bits) {
  unsigned a, b, c, d;
  if (!__get_cpuid(1, &a, &b, &c, &d) || !(c & (1u << 27))) return 0; /* OSXSAVE */
  uint32_t lo, hi;
  __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
  return ((((uint64_t)hi << 32) | lo) & bits) == bits;
}

/* NULL if AMX-INT8 runs here, else why not. */
static const char *amx_missing(void) {
  unsigned a, b, c, d;
  if (!__get_cpuid_count(7, 0, &a, &b, &c, &d) || !(d & (1u << 24)) || !(d & (1u << 25)))
    return "no AMX-TILE/AMX-INT8 on this CPU";
  if (!xcr0_has((1u << 17) | (1u << 18))) return "the OS does not enable AMX tile state";
#ifdef SYS_arch_prctl
  /* ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA */
  if (syscall(SYS_arch_prctl, 0x1023, 18) != 0)
    return "Linux refused arch_prctl(ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA)";
  return NULL;
#else
  return "not Linux: no arch_prctl for tile permission";
#endif
}

static void setup(double split) {
  __builtin_cpu_init();
  int avx2 = __builtin_cpu_supports("avx2");
  int vnni512 = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                __builtin_cpu_supports("avx512vnni");
  int vl = __builtin_cpu_supports("avx512vl");
  int avxvnni = avx2 && __builtin_cpu_supports("avxvnni");
  const char *no_avx2 = avx2 ? NULL : "no AVX2";
  const char *amx = amx_missing();

  add_compute("avx2_i16_6x16", "i8i8i32-avx2 tile 6x16: vpmovsxbw+vpmaddwd+vpaddd",
              "vpmovsxbw + vpmaddwd + vpaddd ymm", "x86_64-i8i8i32-avx2", no_avx2,
              i16_kernel_6rows, 6 * 16 * 2);
  add_compute("avx2_i16_4x16", "  same instructions, tile 4x16",
              "vpmovsxbw + vpmaddwd + vpaddd ymm", "", no_avx2, i16_kernel, 4 * 16 * 2);
  add_compute("avx2_i16_prewidened", "  tile 4x16, weights pre-widened: no vpmovsxbw",
              "vpmaddwd + vpaddd ymm", "", no_avx2, i16_prewidened, 4 * 16 * 2);
  add_compute("avx2_u7_4x16", "u7i8i32-avx2 tile 4x16: vpmaddubsw+vpmaddwd+vpaddd",
              "vpmaddubsw + vpmaddwd + vpaddd ymm", "x86_64-u7i8i32-avx2", no_avx2,
              u7_kernel, 4 * 16 * 4);
  add_compute("vnni_zmm_8x32", "u8i8i32-avx512vnni tile 8x32: vpdpbusd zmm",
              "vpdpbusd zmm (AVX-512 VNNI)", "x86_64-u8i8i32-avx512vnni",
              vnni512 ? NULL : "no AVX-512 VNNI", vnni_zmm_8x32, 8 * 32 * 4);
  add_compute("vnni_ymm_6x16", "u8i8i32-avxvnni tile 6x16: {vex} vpdpbusd ymm",
              "vpdpbusd ymm, VEX (AVX-VNNI)", "x86_64-u8i8i32-avxvnni",
              avxvnni ? NULL : "no AVX-VNNI", vnni_ymm_vex, 6 * 16 * 4);
  add_compute("vnni_ymm_6x16_evex", "  same tile, {evex} vpdpbusd ymm (AVX-512 VL)",
              "vpdpbusd ymm, EVEX (AVX-512 VNNI + VL)", "",
              vnni512 && vl ? NULL : "no AVX-512 VNNI + VL", vnni_ymm_evex, 6 * 16 * 4);
  add_compute("amx_32x32", "u8i8i32-amx tile 32x32: 4 tileloadd + 4 tdpbusd",
              "tileloadd + tdpbusd (AMX-INT8)", "x86_64-u8i8i32-amx", amx, amx_tile_32x32,
              4.0 * 16 * 16 * 64);
  add_compute("amx_tdpbusd", "  tdpbusd alone, 4 accumulator tiles, no loads",
              "tdpbusd (AMX-INT8)", "", amx, amx_tdpbusd_only, 4.0 * 16 * 16 * 64);

  /* The read loops, one pair per size. */
  int zmm = __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512f");
  const char *env = getenv("QLINEAR_STREAM_MIB");
  char sizes[256];
  snprintf(sizes, sizeof sizes, "%s", env && *env ? env : "16");
  for (char *tok = strtok(sizes, ","); tok && nloops + 2 <= MAX_LOOPS; tok = strtok(NULL, ",")) {
    double mib = atof(tok);
    if (mib <= 0) continue;
    long len = (long)(mib * 1024 * 1024 / split) / 256 * 256;
    if (len < 256) len = 256;
    int8_t *buf = aligned_alloc(64, len);
    if (!buf) {
      fprintf(stderr, "no memory for %g MiB\n", mib);
      exit(1);
    }
    memset(buf, 1, len);
    for (int pf = 0; pf < 2; pf++) {
      char *id = malloc(48), name[64];
      snprintf(id, 48, "read_%gMiB%s", mib, pf ? "_prefetch" : "");
      if (pf)
        snprintf(name, sizeof name, "  same, prefetching 8 KiB ahead");
      else
        snprintf(name, sizeof name, "GEMV: %g MiB of weights read in order", mib);
      struct loop *l = add(id, name,
                           zmm    ? "vpaddb zmm loads (memory read)"
                           : avx2 ? "vpaddb ymm loads (memory read)"
                                  : "paddb xmm loads (memory read)",
                           "", NULL);
      l->read = zmm ? (pf ? read_zmm_pf : read_zmm)
                    : avx2 ? (pf ? read_ymm_pf : read_ymm) : (pf ? read_xmm_pf : read_xmm);
      l->mib = mib;
      l->buf = buf;
      l->len = len;
    }
  }
}

/* ---- measuring ----------------------------------------------------------- */

static int cmp(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

static void json_string(const char *s) {
  putchar('"');
  for (; *s; s++) {
    if (*s == '"' || *s == '\\') putchar('\\');
    putchar(*s);
  }
  putchar('"');
}

int main(int argc, char **argv) {
  /* Short bursts, all loops round-robin, so that every loop sees the same
   * moments of a machine whose speed drifts (shared host, turbo). */
  double burst = 0.01, split = 1, start_at = 0;
  int json = 0, rounds = 101;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--json"))
      json = 1;
    else if (!strcmp(argv[i], "--rounds") && i + 1 < argc)
      rounds = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--split") && i + 1 < argc)
      split = atof(argv[++i]);
    else if (!strcmp(argv[i], "--start-at") && i + 1 < argc)
      start_at = atof(argv[++i]);
    else if (argv[i][0] != '-' && atof(argv[i]) > 0)
      burst = atof(argv[i]);
    else {
      fprintf(stderr,
              "usage: %s [--json] [--rounds N] [--split N] [--start-at UNIX_TIME] [burst seconds]\n",
              argv[0]);
      return 2;
    }
  }
  if (rounds < 1) rounds = 1;
  if (split < 1) split = 1;
  memset(w_i8, 1, sizeof w_i8);
  memset(w_i16, 1, sizeof w_i16);
  memset(a_rows, 1, sizeof a_rows);
  memset(amx_a, 1, sizeof amx_a);
  memset(amx_w, 1, sizeof amx_w);
  setup(split);

  double *g = calloc((size_t)nloops * rounds, sizeof(double));
  double *ratio = calloc((size_t)nloops * rounds, sizeof(double));
  int first = -1;
  for (unsigned l = 0; l < nloops; l++) {
    if (loops[l].skip) continue;
    if (first < 0) first = (int)l;
    /* Calibrate the burst length: double until a run takes a quarter of
     * it, then scale by the fastest of three runs, so that one preempted
     * run does not shorten every burst of this loop. */
    long it = 1000;
    for (;;) {
      double t0 = now();
      run(&loops[l], it);
      if (now() - t0 > burst / 4) break;
      it *= 2;
    }
    double fastest = 1e30;
    for (int i = 0; i < 3; i++) {
      double t0 = now();
      run(&loops[l], it);
      double t = now() - t0;
      if (t < fastest) fastest = t;
    }
    loops[l].its = (long)(it * (burst / fastest)) + 1;
  }
  /* With --start-at, round r starts at start_at + r · period (or at once
   * if late), so that processes started together stay in step. */
  unsigned running = 0;
  for (unsigned l = 0; l < nloops; l++) running += !loops[l].skip;
  double period = 1.25 * burst * running;
  for (int r = 0; r < rounds; r++) {
    if (start_at > 0) {
      struct timespec t;
      clock_gettime(CLOCK_REALTIME, &t);
      double wait = start_at + r * period - (t.tv_sec + t.tv_nsec * 1e-9);
      if (wait > 0) usleep((useconds_t)(wait * 1e6));
    }
    for (unsigned l = 0; l < nloops; l++) {
      if (loops[l].skip) continue;
      double t0 = now();
      run(&loops[l], loops[l].its);
      g[l * rounds + r] = gops(&loops[l], loops[l].its, now() - t0);
    }
    for (unsigned l = 0; l < nloops; l++)
      if (!loops[l].skip) ratio[l * rounds + r] = g[l * rounds + r] / g[first * rounds + r];
  }
  if (!json)
    printf("%-56s %8s %8s %8s\n", "loop (GOPS; ratio to the first, same rounds)", "median",
           "best", "vs 1st");
  for (unsigned l = 0; l < nloops; l++) {
    struct loop *lp = &loops[l];
    double *gl = g + l * rounds, *rl = ratio + l * rounds;
    qsort(gl, rounds, sizeof(double), cmp);
    qsort(rl, rounds, sizeof(double), cmp);
    double median = gl[rounds / 2], best = gl[rounds - 1], vs = rl[rounds / 2];
    if (!json) {
      if (lp->skip)
        printf("%-56s skipped: %s\n", lp->name, lp->skip);
      else if (lp->read)
        printf("%-56s %8.1f %8.1f %8.2f  (%.1f GB/s)\n", lp->name, median, best, vs,
               median / 2);
      else
        printf("%-56s %8.1f %8.1f %8.2f\n", lp->name, median, best, vs);
      continue;
    }
    printf("{\"id\":");
    json_string(lp->id);
    printf(",\"name\":");
    json_string(lp->name[0] == ' ' ? lp->name + 2 : lp->name);
    printf(",\"instruction\":");
    json_string(lp->instruction);
    printf(",\"kernel\":");
    json_string(lp->kernel);
    if (lp->read) printf(",\"mib\":%g,\"buffer_bytes\":%ld", lp->mib, lp->len);
    if (lp->skip) {
      printf(",\"skipped\":");
      json_string(lp->skip);
    } else {
      printf(",\"gops\":%.3f,\"best\":%.3f,\"vs_first\":%.4f,\"rounds\":%d,\"burst\":%g",
             median, best, vs, rounds, burst);
      if (lp->read) printf(",\"gbps\":%.3f", median / 2);
    }
    printf("}\n");
  }
  return 0;
}
