/*
 * registry.c - numbered bundles and a champion pointer in a directory (see registry.h).
 *
 * Invariants: REG/versions holds only complete bundles named by four or more digits (a
 * half-copied one is still NNNN.tmp and ignored); REG/champion, when present, names one of
 * them, and the symlink REG/current points at the same bundle (versions/NNNN), so an engine
 * given --model REG/current follows the champion through its bundle reloads. Every change is a
 * rename, so concurrent readers never see a partial state. Two
 * writers adding at once could pick the same number; the rename of the second then fails
 * rather than overwrite (rename onto a non-empty directory is refused).
 */
#include "models/registry.h"
#include "models/models.h"

#include <dirent.h>
#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int ensure_dir(const char *path)
{
    return mkdir(path, 0755) == 0 || errno == EEXIST ? 0 : -1;
}

/* Parses "0012" (digits only) into 12; -1 otherwise. */
static int parse_version(const char *name)
{
    if (!*name || strlen(name) > 9)
        return -1;
    for (const char *p = name; *p; p++)
        if (*p < '0' || *p > '9')
            return -1;
    return atoi(name);
}

static int int_cmp(const void *a, const void *b)
{
    int x = *(const int *)a, y = *(const int *)b;
    return (x > y) - (x < y);
}

vg_err_t vg_registry_list(const char *reg, int **versions, size_t *n, char *errbuf, size_t errlen)
{
    char path[4096];
    snprintf(path, sizeof(path), "%s/versions", reg);
    *versions = NULL;
    *n = 0;
    DIR *d = opendir(path);
    if (!d) {
        if (errno == ENOENT)
            return VG_OK;
        return vg_errf(errbuf, errlen, VG_ERR_IO, "model registry %s: %s", reg, strerror(errno));
    }
    size_t cap = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        int v = parse_version(e->d_name);
        if (v < 0)
            continue;
        if (*n == cap) {
            cap = cap ? cap * 2 : 16;
            *versions = vg_xrealloc(*versions, cap * sizeof(**versions));
        }
        (*versions)[(*n)++] = v;
    }
    closedir(d);
    if (*n)
        qsort(*versions, *n, sizeof(**versions), int_cmp);
    return VG_OK;
}

static vg_err_t copy_file(const char *from, const char *to, char *errbuf, size_t errlen)
{
    char *data = NULL;
    size_t len = 0;
    vg_err_t err = vg_read_file(from, &data, &len, errbuf, errlen);
    if (err)
        return err;
    FILE *f = fopen(to, "wb");
    int ok = f && fwrite(data, 1, len, f) == len;
    if (f)
        ok &= fclose(f) == 0;
    free(data);
    if (!ok)
        return vg_errf(errbuf, errlen, VG_ERR_IO, "cannot write %s: %s", to, strerror(errno));
    return VG_OK;
}

vg_err_t vg_registry_add(const char *reg, const char *dir, int *version, char *errbuf,
                         size_t errlen)
{
    char inner[VG_ERRLEN], path[4096], tmp[4096], from[8200], to[8200];
    vg_model_t *model = vg_model_load(dir, NULL, 0, NULL, inner, sizeof(inner));
    if (!model)
        return vg_errf(errbuf, errlen, VG_ERR_MODEL, "cannot add to model registry %s: %s", reg,
                       inner);
    /* The files to copy are the manifest and the model file it names. */
    json_t *manifest = json_loads(vg_model_manifest_text(model), 0, NULL);
    const char *model_file = json_string_value(json_object_get(manifest, "model_file"));
    const char *files[2] = {"manifest.json", model_file};
    int *versions = NULL;
    size_t n = 0;
    vg_err_t err = vg_registry_list(reg, &versions, &n, errbuf, errlen);
    if (err)
        goto out;
    int next = n ? versions[n - 1] + 1 : 1;
    snprintf(path, sizeof(path), "%s/versions", reg);
    if (ensure_dir(reg) != 0 || ensure_dir(path) != 0) {
        err = vg_errf(errbuf, errlen, VG_ERR_IO, "cannot create %s: %s", path, strerror(errno));
        goto out;
    }
    snprintf(tmp, sizeof(tmp), "%s/versions/%04d.tmp", reg, next);
    snprintf(path, sizeof(path), "%s/versions/%04d", reg, next);
    if (ensure_dir(tmp) != 0) {
        err = vg_errf(errbuf, errlen, VG_ERR_IO, "cannot create %s: %s", tmp, strerror(errno));
        goto out;
    }
    for (size_t i = 0; i < 2 && !err; i++) {
        snprintf(from, sizeof(from), "%s/%s", dir, files[i]);
        snprintf(to, sizeof(to), "%s/%s", tmp, files[i]);
        err = copy_file(from, to, errbuf, errlen);
    }
    if (!err && rename(tmp, path) != 0)
        err = vg_errf(errbuf, errlen, VG_ERR_IO, "cannot publish %s: %s", path, strerror(errno));
    if (err) {
        for (size_t i = 0; i < 2; i++) {
            snprintf(to, sizeof(to), "%s/%s", tmp, files[i]);
            remove(to);
        }
        rmdir(tmp);
        goto out;
    }
    *version = next;
out:
    free(versions);
    json_decref(manifest);
    vg_model_free(model);
    return err;
}

vg_err_t vg_registry_champion(const char *reg, int *version, char *path, size_t pathlen,
                              char *errbuf, size_t errlen)
{
    char file[4096];
    snprintf(file, sizeof(file), "%s/champion", reg);
    FILE *f = fopen(file, "rb");
    if (!f)
        return vg_errf(errbuf, errlen, errno == ENOENT ? VG_ERR_NOTFOUND : VG_ERR_IO,
                       "model registry %s has no champion%s%s", reg, errno == ENOENT ? "" : ": ",
                       errno == ENOENT ? "" : strerror(errno));
    char line[32] = "";
    if (!fgets(line, sizeof(line), f))
        line[0] = '\0';
    fclose(f);
    line[strcspn(line, "\n")] = '\0';
    int v = parse_version(line);
    if (v < 0)
        return vg_errf(errbuf, errlen, VG_ERR_INPUT, "model registry %s: champion file holds '%s'",
                       reg, line);
    *version = v;
    snprintf(path, pathlen, "%s/versions/%04d", reg, v);
    return VG_OK;
}

vg_err_t vg_registry_promote(const char *reg, int version, char *errbuf, size_t errlen)
{
    char path[4096], tmp[4096];
    struct stat st;
    snprintf(path, sizeof(path), "%s/versions/%04d", reg, version);
    if (version < 1 || stat(path, &st) != 0 || !S_ISDIR(st.st_mode))
        return vg_errf(errbuf, errlen, VG_ERR_NOTFOUND, "model registry %s has no version %d", reg,
                       version);
    snprintf(path, sizeof(path), "%s/champion", reg);
    snprintf(tmp, sizeof(tmp), "%s/.champion.tmp", reg);
    FILE *f = fopen(tmp, "wb");
    int ok = f && fprintf(f, "%04d\n", version) > 0;
    if (f)
        ok &= fclose(f) == 0;
    if (!ok || rename(tmp, path) != 0) {
        vg_err_t err =
            vg_errf(errbuf, errlen, VG_ERR_IO, "cannot write %s: %s", path, strerror(errno));
        remove(tmp);
        return err;
    }
    /* The champion file is the truth; the link follows it (a relative target, so the
     * registry can be moved). */
    char target[32];
    snprintf(target, sizeof(target), "versions/%04d", version);
    snprintf(path, sizeof(path), "%s/current", reg);
    snprintf(tmp, sizeof(tmp), "%s/.current.tmp", reg);
    remove(tmp);
    if (symlink(target, tmp) != 0 || rename(tmp, path) != 0) {
        vg_err_t err =
            vg_errf(errbuf, errlen, VG_ERR_IO, "cannot link %s: %s", path, strerror(errno));
        remove(tmp);
        return err;
    }
    return VG_OK;
}
