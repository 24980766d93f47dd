// Preloaded into a bench (LD_PRELOAD), makes this process and its children see an AVX2-only x86 CPU
// (an AMD EPYC Rome/Milan's instruction sets: AVX2 and FMA, no AVX-512, no AVX-VNNI, no AMX), so
// ONNX Runtime dispatches to the kernels it runs on such a machine. It uses CPUID faulting
// (arch_prctl(ARCH_SET_CPUID, 0), Linux >= 4.12 on CPUs with the `cpuid_fault` flag): every CPUID
// instruction traps, the handler runs the real one with faulting briefly off, clears the feature
// bits below and resumes after the instruction. The setting survives fork and clone (threads,
// services a bench starts) and is reset by execve, where the preload sets it again.
//
// It changes which kernels run, not the machine: caches, clocks and the core stay this CPU's.
// A program that installs a SIGSEGV handler of its own before its first CPUID (rustc does; Rust's
// std keeps one already set) crashes under it: scripts/bench.sh builds first, then preloads it.
// Build: cc -shared -fPIC -O2 -o avx2_only.so avx2_only.c
#define _GNU_SOURCE
#include <asm/prctl.h>
#include <cpuid.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <ucontext.h>
#include <unistd.h>

#define BIT(n) (1u << (n))

// Leaf 7, subleaf 0. EBX: AVX512F, DQ, IFMA, PF, ER, CD, BW, VL.
static const unsigned LEAF7_EBX = BIT(16) | BIT(17) | BIT(21) | BIT(26) | BIT(27) | BIT(28) | BIT(30) | BIT(31);
// ECX: AVX512_VBMI, VBMI2, VNNI, BITALG, VPOPCNTDQ.
static const unsigned LEAF7_ECX = BIT(1) | BIT(6) | BIT(11) | BIT(12) | BIT(14);
// EDX: AVX512_4VNNIW, 4FMAPS, VP2INTERSECT, AMX_BF16, AVX512_FP16, AMX_TILE, AMX_INT8.
static const unsigned LEAF7_EDX = BIT(2) | BIT(3) | BIT(8) | BIT(22) | BIT(23) | BIT(24) | BIT(25);
// Leaf 7, subleaf 1. EAX: AVX_VNNI, AVX512_BF16, AVX_IFMA. EDX: AVX_VNNI_INT8, AVX_NE_CONVERT.
static const unsigned LEAF7_1_EAX = BIT(4) | BIT(5) | BIT(23);
static const unsigned LEAF7_1_EDX = BIT(4) | BIT(5);

static int set_cpuid_faulting(int on) { return (int)syscall(SYS_arch_prctl, ARCH_SET_CPUID, on ? 0 : 1); }

static void on_sigsegv(int signal, siginfo_t *info, void *context) {
    (void)info;
    ucontext_t *uc = context;
    greg_t *regs = uc->uc_mcontext.gregs;
    const unsigned char *ip = (const unsigned char *)regs[REG_RIP];
    if (ip[0] != 0x0f || ip[1] != 0xa2) {
        // Not a CPUID: a real fault. Fall back to the default action, which the retry meets.
        struct sigaction dfl;
        memset(&dfl, 0, sizeof dfl);
        dfl.sa_handler = SIG_DFL;
        sigaction(signal, &dfl, NULL);
        return;
    }
    unsigned leaf = (unsigned)regs[REG_RAX], subleaf = (unsigned)regs[REG_RCX];
    unsigned a, b, c, d;
    set_cpuid_faulting(0);
    __cpuid_count(leaf, subleaf, a, b, c, d);
    set_cpuid_faulting(1);
    if (leaf == 7 && subleaf == 0) {
        b &= ~LEAF7_EBX;
        c &= ~LEAF7_ECX;
        d &= ~LEAF7_EDX;
    } else if (leaf == 7 && subleaf == 1) {
        a &= ~LEAF7_1_EAX;
        d &= ~LEAF7_1_EDX;
    }
    regs[REG_RAX] = a;
    regs[REG_RBX] = b;
    regs[REG_RCX] = c;
    regs[REG_RDX] = d;
    regs[REG_RIP] += 2;
}

__attribute__((constructor)) static void mask_cpuid(void) {
    struct sigaction action;
    memset(&action, 0, sizeof action);
    action.sa_sigaction = on_sigsegv;
    action.sa_flags = SA_SIGINFO | SA_NODEFER;
    sigemptyset(&action.sa_mask);
    if (sigaction(SIGSEGV, &action, NULL) != 0 || set_cpuid_faulting(1) != 0) {
        fprintf(stderr, "avx2_only.so: this kernel or CPU cannot fault on CPUID (no `cpuid_fault` flag)\n");
        exit(1);
    }
}
