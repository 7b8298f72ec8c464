/* matmul_peak.c - the roofline for bench/engine_vs_torch.sh: best-of-K time of
 * one oneDNN matmul (default 2048^3) in fp32 or bf16, printed as one JSON line.
 * It uses the same oneDNN (Debian's 2.6) as the engine, so "achieved GFLOP/s /
 * matmul GFLOP/s" says how close a network gets to what this CPU can do in the
 * same run. Built by the bench script (cc ... -ldnnl), not part of libfreeair.
 *
 * usage: matmul_peak fp32|bf16 [N] [iters]
 */
#include <dnnl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

#define CK(x)                                                                    \
    do {                                                                         \
        dnnl_status_t s_ = (x);                                                  \
        if (s_ != dnnl_success) {                                                \
            fprintf(stderr, "matmul_peak: %s failed (status %d)\n", #x, (int)s_); \
            return 1;                                                            \
        }                                                                        \
    } while (0)

int main(int argc, char **argv) {
    if (argc < 2 || (strcmp(argv[1], "fp32") && strcmp(argv[1], "bf16"))) {
        fprintf(stderr, "usage: matmul_peak fp32|bf16 [N] [iters]\n");
        return 2;
    }
    int bf16 = !strcmp(argv[1], "bf16");
    long n = argc > 2 ? strtol(argv[2], NULL, 10) : 2048;
    int iters = argc > 3 ? atoi(argv[3]) : 5;
    if (n < 16 || n > 16384 || iters < 1 || iters > 1000) {
        fprintf(stderr, "matmul_peak: N must be in [16, 16384], iters in [1, 1000]\n");
        return 2;
    }
    dnnl_data_type_t dt = bf16 ? dnnl_bf16 : dnnl_f32;
    dnnl_engine_t eng;
    dnnl_stream_t strm;
    CK(dnnl_engine_create(&eng, dnnl_cpu, 0));
    CK(dnnl_stream_create(&strm, eng, dnnl_stream_default_flags));
    dnnl_dims_t d = {n, n};
    dnnl_memory_desc_t a_md, b_md, c_md;
    CK(dnnl_memory_desc_init_by_tag(&a_md, 2, d, dt, dnnl_ab));
    CK(dnnl_memory_desc_init_by_tag(&b_md, 2, d, dt, dnnl_ab));
    CK(dnnl_memory_desc_init_by_tag(&c_md, 2, d, dnnl_f32, dnnl_ab));
    dnnl_matmul_desc_t md;
    CK(dnnl_matmul_desc_init(&md, &a_md, &b_md, NULL, &c_md));
    dnnl_primitive_desc_t pd;
    CK(dnnl_primitive_desc_create(&pd, &md, NULL, eng, NULL));
    const char *impl = "?";
    dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &impl);
    dnnl_primitive_t p;
    CK(dnnl_primitive_create(&p, pd));
    dnnl_memory_t a, b, c;
    CK(dnnl_memory_create(&a, &a_md, eng, DNNL_MEMORY_ALLOCATE));
    CK(dnnl_memory_create(&b, &b_md, eng, DNNL_MEMORY_ALLOCATE));
    CK(dnnl_memory_create(&c, &c_md, eng, DNNL_MEMORY_ALLOCATE));
    /* Zeros would let no kernel cheat, but fill anyway: denormal-free data. */
    void *pa, *pb;
    dnnl_memory_get_data_handle(a, &pa);
    dnnl_memory_get_data_handle(b, &pb);
    memset(pa, 0x3f, dnnl_memory_desc_get_size(&a_md));
    memset(pb, 0x3f, dnnl_memory_desc_get_size(&b_md));
    dnnl_exec_arg_t args[3] = {{DNNL_ARG_SRC, a}, {DNNL_ARG_WEIGHTS, b}, {DNNL_ARG_DST, c}};
    double best = 1e30;
    for (int i = 0; i < iters + 1; i++) {
        double t0 = now();
        CK(dnnl_primitive_execute(p, strm, 3, args));
        CK(dnnl_stream_wait(strm));
        double t = now() - t0;
        if (i > 0 && t < best) best = t; /* the first run pays for page faults */
    }
    printf("{\"event\":\"matmul\",\"peer\":\"onednn\",\"precision\":\"%s\",\"n\":%ld,"
           "\"impl\":\"%s\",\"gflops\":%.2f}\n",
           argv[1], n, impl, 2.0 * (double)n * n * n / best / 1e9);
    dnnl_memory_destroy(a);
    dnnl_memory_destroy(b);
    dnnl_memory_destroy(c);
    dnnl_primitive_destroy(p);
    dnnl_primitive_desc_destroy(pd);
    dnnl_stream_destroy(strm);
    dnnl_engine_destroy(eng);
    return 0;
}
