/*
 * test_model_registry.c - the model registry: numbered versions, champion, promotion, and
 * the exact messages for the states an operator meets (no champion yet, unknown version,
 * a broken bundle refused at the door).
 */
#include "models/models.h"
#include "models/registry.h"
#include "vg_test.h"

#include <sys/stat.h>
#include <unistd.h>

#define NF 3
static const char *const names[NF] = {"amount", "hour", "card_count_1h"};
static char *tmp;

static vg_model_t *tiny_model(int trees)
{
    static float rows[200 * NF], labels[200];
    for (size_t r = 0; r < 200; r++) {
        rows[r * NF] = (float)(r % 17);
        rows[r * NF + 1] = (float)(r % 24);
        rows[r * NF + 2] = (float)(r % 5);
        labels[r] = (r % 17) > 12 && (r % 5) > 2 ? 1.0f : 0.0f;
    }
    vg_train_params_t params;
    vg_train_params_default(&params);
    params.trees = trees;
    params.max_depth = 3;
    char err[VG_ERRLEN];
    vg_model_t *model = vg_model_train(rows, labels, 200, NF, names, &params, err, sizeof(err));
    if (!model)
        fprintf(stderr, "train: %s\n", err);
    return model;
}

static void test_registry(void)
{
    char reg[4200], bundle[4200], broken[4200], path[8400], err[VG_ERRLEN] = "", msg[9000];
    snprintf(reg, sizeof(reg), "%s/registry", tmp);
    snprintf(bundle, sizeof(bundle), "%s/candidate", tmp);
    snprintf(broken, sizeof(broken), "%s/broken", tmp);

    /* An empty (missing) registry: no versions, no champion. */
    int *versions = NULL, champion = 0;
    size_t n = 99;
    VG_CHECK_INT(vg_registry_list(reg, &versions, &n, err, sizeof(err)), VG_OK);
    VG_CHECK_INT(n, 0);
    free(versions);
    VG_CHECK_INT(vg_registry_champion(reg, &champion, path, sizeof(path), err, sizeof(err)),
                 VG_ERR_NOTFOUND);
    snprintf(msg, sizeof(msg), "model registry %s has no champion", reg);
    VG_CHECK_STR(err, msg);

    vg_model_t *model = tiny_model(5);
    vg_bundle_info_t info = {.catalog_version = "cat-1", .trained_at_ms = 1522540800000};
    VG_CHECK_INT(vg_model_save_bundle(model, bundle, &info, err, sizeof(err)), VG_OK);
    int v1 = 0, v2 = 0;
    VG_CHECK_INT(vg_registry_add(reg, bundle, &v1, err, sizeof(err)), VG_OK);
    VG_CHECK_INT(v1, 1);
    vg_model_t *second = tiny_model(6);
    info.format = "ubj";
    VG_CHECK_INT(vg_model_save_bundle(second, bundle, &info, err, sizeof(err)), VG_OK);
    VG_CHECK_INT(vg_registry_add(reg, bundle, &v2, err, sizeof(err)), VG_OK);
    VG_CHECK_INT(v2, 2);

    /* A half-copied version (still .tmp) is not a version. */
    snprintf(path, sizeof(path), "%s/versions/0003.tmp", reg);
    mkdir(path, 0755);
    VG_CHECK_INT(vg_registry_list(reg, &versions, &n, err, sizeof(err)), VG_OK);
    VG_CHECK_INT(n, 2);
    if (n == 2) {
        VG_CHECK_INT(versions[0], 1);
        VG_CHECK_INT(versions[1], 2);
    }
    free(versions);

    /* Promote 2; the champion path loads as the same bytes as what was saved. */
    VG_CHECK_INT(vg_registry_promote(reg, 2, err, sizeof(err)), VG_OK);
    VG_CHECK_INT(vg_registry_champion(reg, &champion, path, sizeof(path), err, sizeof(err)), VG_OK);
    VG_CHECK_INT(champion, 2);
    snprintf(msg, sizeof(msg), "%s/versions/0002", reg);
    VG_CHECK_STR(path, msg);
    vg_model_t *loaded = vg_model_load(path, names, NF, "cat-1", err, sizeof(err));
    VG_CHECK(loaded != NULL);
    if (loaded) {
        VG_CHECK(strncmp(vg_model_version(loaded), "0002@", 5) == 0);
        VG_CHECK_STR(strchr(vg_model_version(loaded), '@'), strchr(vg_model_version(second), '@'));
        VG_CHECK_INT(vg_model_rounds(loaded), 6);
    }
    vg_model_free(loaded);
    /* REG/current follows the champion: a relative link, and the same bytes through it. */
    char link[64] = "", current[4300];
    snprintf(current, sizeof(current), "%s/current", reg);
    VG_CHECK_INT(readlink(current, link, sizeof(link) - 1), 13);
    VG_CHECK_STR(link, "versions/0002");
    loaded = vg_model_load(current, names, NF, "cat-1", err, sizeof(err));
    VG_CHECK(loaded != NULL);
    if (loaded)
        VG_CHECK_STR(strchr(vg_model_version(loaded), '@'), strchr(vg_model_version(second), '@'));
    vg_model_free(loaded);
    /* Back to 1. */
    VG_CHECK_INT(vg_registry_promote(reg, 1, err, sizeof(err)), VG_OK);
    VG_CHECK_INT(vg_registry_champion(reg, &champion, path, sizeof(path), err, sizeof(err)), VG_OK);
    VG_CHECK_INT(champion, 1);
    memset(link, 0, sizeof(link));
    VG_CHECK_INT(readlink(current, link, sizeof(link) - 1), 13);
    VG_CHECK_STR(link, "versions/0001");

    VG_CHECK_INT(vg_registry_promote(reg, 7, err, sizeof(err)), VG_ERR_NOTFOUND);
    snprintf(msg, sizeof(msg), "model registry %s has no version 7", reg);
    VG_CHECK_STR(err, msg);

    /* A bundle that does not load never enters the registry. */
    mkdir(broken, 0755);
    VG_CHECK_INT(vg_registry_add(reg, broken, &v1, err, sizeof(err)), VG_ERR_MODEL);
    snprintf(msg, sizeof(msg),
             "cannot add to model registry %s: model bundle %s: cannot read manifest.json: No "
             "such file or directory",
             reg, broken);
    VG_CHECK_STR(err, msg);
    VG_CHECK_INT(vg_registry_list(reg, &versions, &n, err, sizeof(err)), VG_OK);
    VG_CHECK_INT(n, 2);
    free(versions);

    vg_model_free(model);
    vg_model_free(second);
}

int main(void)
{
    tmp = vg_test_tmpdir();
    VG_RUN(test_registry);
    char cmd[4200];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmp);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", tmp);
    free(tmp);
    return vg_test_done();
}
