/*
 * bench_simulate.c - times generating the default dataset (the handbook's 5000 customers,
 * 10000 terminals, 183 days) to files, as `vigil simulate --out DIR` does, beside a
 * baseline measured in the same run: writing the same number of bytes as fixed lines of
 * the same mean length (what the disk alone costs).
 *
 * usage: bench_simulate [DIR]   (default $TMPDIR or /tmp; the files are removed after)
 */
#include "engine/sim.h"

#include <stdlib.h>
#include <string.h>

static double secs(int64_t ns)
{
    return (double)ns / 1e9;
}

int main(int argc, char **argv)
{
    const char *base = argc > 1 ? argv[1] : getenv("TMPDIR");
    if (!base || !*base)
        base = "/tmp";
    char errbuf[VG_ERRLEN], path[4200];
    vg_sim_opts_t o = vg_sim_opts_default();

    int64_t t0 = vg_mono_ns();
    vg_sim_t *sim = vg_sim_new(&o, errbuf, sizeof(errbuf));
    if (!sim) {
        fprintf(stderr, "bench_simulate: %s\n", errbuf);
        return 1;
    }
    int64_t t1 = vg_mono_ns();
    uint64_t bytes = 0;
    if (vg_sim_write_files(sim, base, &bytes, errbuf, sizeof(errbuf))) {
        fprintf(stderr, "bench_simulate: %s\n", errbuf);
        vg_sim_free(sim);
        return 1;
    }
    int64_t t2 = vg_mono_ns();

    /* encoding alone, into a reused buffer */
    vg_buf_t buf;
    vg_buf_init(&buf);
    size_t n = vg_sim_count(sim);
    uint64_t sum = 0;
    int64_t t3 = vg_mono_ns();
    for (size_t i = 0; i < n; i++) {
        vg_buf_reset(&buf);
        vg_sim_encode_txn(sim, i, &buf);
        sum += buf.len;
    }
    int64_t t4 = vg_mono_ns();
    vg_sim_stats_t st;
    vg_sim_stats(sim, &st);
    vg_sim_free(sim);

    /* baseline: the same bytes as identical lines of the mean length, 1 MB writes */
    size_t line = n ? (size_t)(bytes / n) : 300;
    char *fixed = vg_xmalloc(line);
    memset(fixed, 'x', line);
    fixed[line - 1] = '\n';
    snprintf(path, sizeof(path), "%s/baseline.jsonl", base);
    FILE *f = fopen(path, "w");
    if (!f) {
        fprintf(stderr, "bench_simulate: cannot create %s\n", path);
        return 1;
    }
    int64_t t5 = vg_mono_ns();
    vg_buf_reset(&buf);
    for (uint64_t written = 0; written < bytes; written += line) {
        vg_buf_append(&buf, fixed, line);
        if (buf.len >= (1u << 20)) {
            fwrite(buf.data, 1, buf.len, f);
            vg_buf_reset(&buf);
        }
    }
    fwrite(buf.data, 1, buf.len, f);
    fclose(f);
    int64_t t6 = vg_mono_ns();
    remove(path);
    snprintf(path, sizeof(path), "%s/transactions.jsonl", base);
    remove(path);
    snprintf(path, sizeof(path), "%s/labels.jsonl", base);
    remove(path);
    vg_buf_free(&buf);
    free(fixed);

    printf("default dataset: %llu transactions, %llu frauds (%.3f%%): scenario 1 %llu, "
           "2 %llu, 3 %llu\n",
           (unsigned long long)st.transactions, (unsigned long long)st.frauds,
           100.0 * (double)st.frauds / (double)st.transactions,
           (unsigned long long)st.by_scenario[1], (unsigned long long)st.by_scenario[2],
           (unsigned long long)st.by_scenario[3]);
    printf("simulate to files:  %.2f s total = generate %.2f s + encode and write %.2f s "
           "(%.1f MB, %.0f txn/s)\n",
           secs(t2 - t0), secs(t1 - t0), secs(t2 - t1), (double)bytes / 1e6,
           (double)n / secs(t2 - t0));
    printf("encode only:        %.2f s (%.0f txn/s, %.1f MB)\n", secs(t4 - t3),
           (double)n / secs(t4 - t3), (double)sum / 1e6);
    printf("baseline (fixed %zu-byte lines, same bytes): %.2f s\n", line, secs(t6 - t5));
    return 0;
}
