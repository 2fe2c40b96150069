/*
 * vg_test.h - the smallest test harness that says what failed and where.
 *
 * A test file defines functions `static void test_x(void)` and a main() that runs them
 * with VG_RUN(test_x) and returns vg_test_done(). Every check counts; a failed check
 * prints file:line and both values and the test goes on, so one run shows every failure.
 * The closing line is "N passed, N failed" (checks), and the exit code is non-zero if any
 * check failed.
 */
#ifndef VG_TEST_H
#define VG_TEST_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int vg_test_passed, vg_test_failed;
static const char *vg_test_current = "";

#define VG_CHECK(cond)                                                                             \
    do {                                                                                           \
        if (cond) {                                                                                \
            vg_test_passed++;                                                                      \
        } else {                                                                                   \
            vg_test_failed++;                                                                      \
            fprintf(stderr, "%s:%d: %s: check failed: %s\n", __FILE__, __LINE__, vg_test_current,  \
                    #cond);                                                                        \
        }                                                                                          \
    } while (0)

#define VG_CHECK_INT(a, b)                                                                         \
    do {                                                                                           \
        long long vg_a_ = (long long)(a), vg_b_ = (long long)(b);                                  \
        if (vg_a_ == vg_b_) {                                                                      \
            vg_test_passed++;                                                                      \
        } else {                                                                                   \
            vg_test_failed++;                                                                      \
            fprintf(stderr, "%s:%d: %s: %s == %s: %lld != %lld\n", __FILE__, __LINE__,             \
                    vg_test_current, #a, #b, vg_a_, vg_b_);                                        \
        }                                                                                          \
    } while (0)

#define VG_CHECK_STR(a, b)                                                                         \
    do {                                                                                           \
        const char *vg_a_ = (a), *vg_b_ = (b);                                                     \
        if (vg_a_ && vg_b_ && strcmp(vg_a_, vg_b_) == 0) {                                         \
            vg_test_passed++;                                                                      \
        } else {                                                                                   \
            vg_test_failed++;                                                                      \
            fprintf(stderr, "%s:%d: %s: %s == %s:\n  got      \"%s\"\n  expected \"%s\"\n",        \
                    __FILE__, __LINE__, vg_test_current, #a, #b, vg_a_ ? vg_a_ : "(null)",         \
                    vg_b_ ? vg_b_ : "(null)");                                                     \
        }                                                                                          \
    } while (0)

/* Doubles equal within a relative tolerance (NaN equals NaN: "missing" is a value). */
#define VG_CHECK_NEAR(a, b, rel)                                                                   \
    do {                                                                                           \
        double vg_a_ = (a), vg_b_ = (b);                                                           \
        double vg_d_ = fabs(vg_a_ - vg_b_);                                                        \
        double vg_m_ = fmax(fabs(vg_a_), fabs(vg_b_));                                             \
        if ((isnan(vg_a_) && isnan(vg_b_)) || vg_a_ == vg_b_ || vg_d_ <= (rel)*vg_m_) {            \
            vg_test_passed++;                                                                      \
        } else {                                                                                   \
            vg_test_failed++;                                                                      \
            fprintf(stderr, "%s:%d: %s: %s ~= %s: %.17g != %.17g\n", __FILE__, __LINE__,           \
                    vg_test_current, #a, #b, vg_a_, vg_b_);                                        \
        }                                                                                          \
    } while (0)

#define VG_RUN(fn)                                                                                 \
    do {                                                                                           \
        vg_test_current = #fn;                                                                     \
        int vg_before_ = vg_test_failed;                                                           \
        fn();                                                                                      \
        fprintf(stderr, "%s %s\n", vg_test_failed == vg_before_ ? "ok  " : "FAIL", #fn);           \
    } while (0)

static inline int vg_test_done(void)
{
    printf("%d passed, %d failed\n", vg_test_passed, vg_test_failed);
    return vg_test_failed ? 1 : 0;
}

/* A fresh temporary directory (mkdtemp under $TMPDIR or /tmp); caller frees the string. */
static inline char *vg_test_tmpdir(void)
{
    const char *base = getenv("TMPDIR");
    char *tmpl = malloc(4096);
    snprintf(tmpl, 4096, "%s/vigil-test-XXXXXX", base && *base ? base : "/tmp");
    if (!mkdtemp(tmpl)) {
        perror("mkdtemp");
        exit(2);
    }
    return tmpl;
}

/* Removes a vg_test_tmpdir() directory with all it holds, and frees its name. */
static inline void vg_test_rmdir(char *dir)
{
    char cmd[4200];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    VG_CHECK_INT(system(cmd), 0);
    free(dir);
}

#endif
