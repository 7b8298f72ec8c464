/* fa_test.h - minimal test macros: every check that fails prints where and
 * why, and the test binary exits non-zero (sds style: tiny, loud). */
#ifndef FA_TEST_H
#define FA_TEST_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

extern int fa_test_failures;

#define CHECK(cond)                                                                  \
    do {                                                                             \
        if (!(cond)) {                                                               \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
            fa_test_failures++;                                                      \
        }                                                                            \
    } while (0)

#define CHECK_MSG(cond, ...)                                                \
    do {                                                                    \
        if (!(cond)) {                                                      \
            fprintf(stderr, "%s:%d: CHECK failed: %s: ", __FILE__, __LINE__, #cond); \
            fprintf(stderr, __VA_ARGS__);                                   \
            fputc('\n', stderr);                                            \
            fa_test_failures++;                                             \
        }                                                                   \
    } while (0)

/* |a-b| <= atol + rtol*|b| */
#define CHECK_CLOSE(a, b, atol, rtol)                                                     \
    do {                                                                                  \
        double _a = (a), _b = (b);                                                        \
        if (!(fabs(_a - _b) <= (atol) + (rtol) * fabs(_b))) {                             \
            fprintf(stderr, "%s:%d: CHECK_CLOSE failed: %s=%.9g vs %s=%.9g\n", __FILE__, \
                    __LINE__, #a, _a, #b, _b);                                            \
            fa_test_failures++;                                                           \
        }                                                                                 \
    } while (0)

/* Define once per test binary, then `return fa_test_finish("name");` */
#define FA_TEST_MAIN_STATE int fa_test_failures = 0;

static inline int fa_test_finish(const char *name) {
    if (fa_test_failures) {
        fprintf(stderr, "%s: %d check(s) failed\n", name, fa_test_failures);
        return 1;
    }
    fprintf(stderr, "%s: ok\n", name);
    return 0;
}

#endif
