/*
 * test_kv.c - the generic key-value layer: families, batches (atomic, delete), point
 * reads, ordered prefix iteration, reopening (including a family on disk the caller no
 * longer names), the compaction expiry hook, and the error for a store already open.
 */
#include "features/kv.h"
#include "vg_test.h"

static int expire_odd(void *ctx, const void *key, size_t klen, const void *val, size_t vlen)
{
    (*(int *)ctx)++;
    return vlen > 0 && (((const char *)val)[vlen - 1] - '0') % 2 == 1;
}

static void test_kv(void)
{
    char *dir = vg_test_tmpdir();
    char eb[VG_ERRLEN] = "";
    int calls = 0;
    vg_kv_family_t fams[] = {{.name = "cases", .point_lookups = 1},
                             {.name = "index", .expire = expire_odd, .expire_ctx = &calls}};
    vg_kv_t *kv = vg_kv_open(dir, fams, 2, NULL, eb, sizeof(eb));
    VG_CHECK_STR(eb, "");
    if (!kv)
        return;
    /* the directory is locked while open */
    vg_kv_t *again = vg_kv_open(dir, fams, 2, NULL, eb, sizeof(eb));
    VG_CHECK(again == NULL);
    VG_CHECK(strstr(eb, "rocksdb open: ") == eb);

    vg_kv_batch_t *b = vg_kv_batch_new();
    char key[32], val[32];
    for (int i = 0; i < 20; i++) {
        snprintf(key, sizeof(key), "%s%02d", i % 2 ? "b/" : "a/", i);
        snprintf(val, sizeof(val), "v%d", i);
        vg_kv_batch_put(b, kv, 1, key, strlen(key), val, strlen(val));
    }
    vg_kv_batch_put(b, kv, 0, "case-1", 6, "open", 4);
    vg_kv_batch_put(b, kv, 0, "case-2", 6, "closed", 6);
    vg_kv_batch_delete(b, kv, 0, "case-2", 6);
    VG_CHECK_INT(vg_kv_batch_count(b), 23);
    VG_CHECK(vg_kv_batch_bytes(b) > 0);
    VG_CHECK_INT(vg_kv_write(kv, b, 1, eb, sizeof(eb)), VG_OK);
    vg_kv_batch_clear(b);
    VG_CHECK_INT(vg_kv_batch_count(b), 0);

    vg_buf_t out;
    vg_buf_init(&out);
    int found = -1;
    VG_CHECK_INT(vg_kv_get(kv, 0, "case-1", 6, &out, &found, eb, sizeof(eb)), VG_OK);
    VG_CHECK_INT(found, 1);
    VG_CHECK_STR(out.data, "open");
    VG_CHECK_INT(vg_kv_get(kv, 0, "case-2", 6, &out, &found, eb, sizeof(eb)), VG_OK);
    VG_CHECK_INT(found, 0);
    VG_CHECK_INT(out.len, 0);
    /* families are separate key spaces */
    VG_CHECK_INT(vg_kv_get(kv, 1, "case-1", 6, &out, &found, eb, sizeof(eb)), VG_OK);
    VG_CHECK_INT(found, 0);

    /* prefix iteration: only b/ keys, in key order */
    vg_kv_iter_t *it = vg_kv_iter_new(kv, 1);
    int n = 0, ordered = 1;
    char prev[32] = "";
    for (vg_kv_iter_seek_prefix(it, "b/", 2); vg_kv_iter_valid(it); vg_kv_iter_next(it)) {
        size_t kl, vl;
        const char *k = vg_kv_iter_key(it, &kl);
        vg_kv_iter_value(it, &vl);
        char cur[32];
        snprintf(cur, sizeof(cur), "%.*s", (int)kl, k);
        ordered &= strcmp(prev, cur) < 0 && strncmp(cur, "b/", 2) == 0;
        snprintf(prev, sizeof(prev), "%s", cur);
        n++;
    }
    VG_CHECK_INT(n, 10);
    VG_CHECK(ordered);
    VG_CHECK_INT(vg_kv_iter_status(it, eb, sizeof(eb)), VG_OK);
    vg_kv_iter_seek(it, NULL, 0);
    VG_CHECK(vg_kv_iter_valid(it));
    size_t kl;
    const char *first = vg_kv_iter_key(it, &kl);
    VG_CHECK(kl == 4 && memcmp(first, "a/00", 4) == 0);
    vg_kv_iter_free(it);

    /* a point_lookups family iterates in order too */
    it = vg_kv_iter_new(kv, 0);
    n = 0;
    for (vg_kv_iter_seek(it, NULL, 0); vg_kv_iter_valid(it); vg_kv_iter_next(it)) {
        size_t vl;
        const char *v = vg_kv_iter_value(it, &vl);
        VG_CHECK(vl == 4 && memcmp(v, "open", 4) == 0);
        n++;
    }
    VG_CHECK_INT(n, 1);
    vg_kv_iter_free(it);

    /* expiry hook: odd values go at compaction */
    vg_kv_compact(kv, 1);
    VG_CHECK(calls >= 20);
    VG_CHECK_INT(vg_kv_get(kv, 1, "b/01", 4, &out, &found, eb, sizeof(eb)), VG_OK);
    VG_CHECK_INT(found, 0);
    VG_CHECK_INT(vg_kv_get(kv, 1, "a/02", 4, &out, &found, eb, sizeof(eb)), VG_OK);
    VG_CHECK_INT(found, 1);
    vg_kv_close(kv);

    /* reopen naming only "index": "cases" is on disk and still opens */
    vg_kv_family_t one[] = {{.name = "index"}};
    kv = vg_kv_open(dir, one, 1, NULL, eb, sizeof(eb));
    VG_CHECK(kv != NULL);
    if (kv) {
        VG_CHECK_INT(vg_kv_get(kv, 0, "a/04", 4, &out, &found, eb, sizeof(eb)), VG_OK);
        VG_CHECK_INT(found, 1);
        VG_CHECK_STR(out.data, "v4");
        VG_CHECK(vg_kv_property(kv, 0, "rocksdb.estimate-num-keys") > 0);
        vg_kv_close(kv);
    }
    kv = vg_kv_open(dir, fams, 2, NULL, eb, sizeof(eb));
    VG_CHECK(kv != NULL);
    if (kv) {
        VG_CHECK_INT(vg_kv_get(kv, 0, "case-1", 6, &out, &found, eb, sizeof(eb)), VG_OK);
        VG_CHECK_INT(found, 1);
    }
    vg_kv_close(kv);
    vg_kv_close(NULL);
    vg_kv_batch_free(b);
    vg_kv_batch_free(NULL);
    vg_buf_free(&out);
    vg_test_rmdir(dir);
}

int main(void)
{
    VG_RUN(test_kv);
    return vg_test_done();
}
