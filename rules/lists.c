/*
 * lists.c - the @name lists: sets of strings loaded from files of one value per line.
 *
 * A value is its line with surrounding blanks (and a trailing \r) removed; blank lines and
 * lines starting with '#' are skipped. The file's bytes are kept and values are
 * NUL-terminated in place, so the set owns exactly two blocks plus its slot arrays. Lookup
 * is open addressing with linear probing over 64-bit hashes (load factor at most 1/2);
 * a slot's stored hash is never 0, which marks it empty.
 */
#include "rules/rules_int.h"

#include <stdlib.h>
#include <string.h>

static uint64_t value_hash(const char *s, size_t len)
{
    uint64_t h = vg_hash64(s, len, VG_HASH_SEED);
    return h ? h : 1;
}

static int is_blank(char c)
{
    return c == ' ' || c == '\t' || c == '\r';
}

static void insert(vg_list_t *list, char *s, size_t len)
{
    uint64_t h = value_hash(s, len);
    size_t i = h & list->mask;
    while (list->hashes[i]) {
        if (list->hashes[i] == h && list->lens[i] == len &&
            memcmp(list->data + list->offs[i], s, len) == 0)
            return; /* a duplicate line */
        i = (i + 1) & list->mask;
    }
    list->hashes[i] = h;
    list->offs[i] = (uint32_t)(s - list->data);
    list->lens[i] = (uint32_t)len;
    list->nvalues++;
}

vg_err_t vg_list_load(vg_list_t *list, const char *dir, const char *name, char *errbuf,
                      size_t errlen)
{
    memset(list, 0, sizeof(*list));
    size_t plen = strlen(dir) + strlen(name) + 6;
    char *path = vg_xmalloc(plen);
    snprintf(path, plen, "%s/%s.txt", dir, name);
    size_t len;
    vg_err_t err = vg_read_file(path, &list->data, &len, errbuf, errlen);
    free(path);
    if (err != VG_OK)
        return err;
    if (len > UINT32_MAX) {
        free(list->data);
        list->data = NULL;
        return vg_errf(errbuf, errlen, VG_ERR_INPUT, "%s/%s.txt: larger than 4 GB", dir, name);
    }
    list->content_hash = vg_hash64(list->data, len, VG_HASH_SEED);
    size_t lines = 1;
    for (size_t i = 0; i < len; i++)
        lines += list->data[i] == '\n';
    size_t slots = 2;
    while (slots < lines * 2)
        slots *= 2;
    list->mask = slots - 1;
    list->hashes = vg_xcalloc(slots, sizeof(*list->hashes));
    list->offs = vg_xcalloc(slots, sizeof(*list->offs));
    list->lens = vg_xcalloc(slots, sizeof(*list->lens));
    list->name = vg_xstrdup(name);
    char *p = list->data, *end = list->data + len;
    while (p < end) {
        char *eol = memchr(p, '\n', (size_t)(end - p));
        if (!eol)
            eol = end;
        char *s = p, *e = eol;
        while (s < e && is_blank(*s))
            s++;
        while (e > s && is_blank(e[-1]))
            e--;
        if (e > s && *s != '#') {
            *e = '\0'; /* e <= eol, and the buffer is NUL-terminated at end */
            insert(list, s, (size_t)(e - s));
        }
        p = eol + 1;
    }
    return VG_OK;
}

void vg_list_free(vg_list_t *list)
{
    free(list->name);
    free(list->hashes);
    free(list->offs);
    free(list->lens);
    free(list->data);
    memset(list, 0, sizeof(*list));
}

int vg_list_contains(const vg_list_t *list, const char *s, size_t len)
{
    uint64_t h = value_hash(s, len);
    size_t i = h & list->mask;
    while (list->hashes[i]) {
        if (list->hashes[i] == h && list->lens[i] == len &&
            memcmp(list->data + list->offs[i], s, len) == 0)
            return 1;
        i = (i + 1) & list->mask;
    }
    return 0;
}
