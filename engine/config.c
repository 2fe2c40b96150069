/*
 * config.c - INI parsing against a declared option table; see config.h.
 *
 * Values are validated when they are set, so a config that loaded is a config that works:
 * the getters never fail.
 */
#include "engine/config.h"

#include <assert.h>
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct vg_config_value {
    char *text; /* NULL = unset */
    int64_t i;
    double d;
} vg_config_value_t;

struct vg_config {
    const vg_option_t *table;
    size_t n;
    vg_config_value_t *values;
    vg_kprop_t *kafka;
    size_t nkafka;
};

static vg_err_t set_value(vg_config_t *config, size_t idx, const char *value, const char *where,
                          char *errbuf, size_t errlen);

vg_config_t *vg_config_new(const vg_option_t *table, size_t n)
{
    vg_config_t *config = vg_xcalloc(1, sizeof(*config));
    config->table = table;
    config->n = n;
    config->values = vg_xcalloc(n, sizeof(*config->values));
    for (size_t i = 0; i < n; i++) {
        if (!table[i].def)
            continue;
        char errbuf[VG_ERRLEN];
        vg_err_t err = set_value(config, i, table[i].def, "default", errbuf, sizeof(errbuf));
        assert(err == VG_OK && "option table default must be valid");
        (void)err;
    }
    return config;
}

void vg_config_free(vg_config_t *config)
{
    if (!config)
        return;
    for (size_t i = 0; i < config->n; i++)
        free(config->values[i].text);
    for (size_t i = 0; i < config->nkafka; i++) {
        free((char *)config->kafka[i].key);
        free((char *)config->kafka[i].value);
    }
    free(config->kafka);
    free(config->values);
    free(config);
}

static const char *type_text(const vg_option_t *o, char *buf, size_t len)
{
    switch (o->type) {
    case VG_OPT_STRING:
        return "a string";
    case VG_OPT_INT:
        snprintf(buf, len, "an integer in %.0f..%.0f", o->min, o->max);
        return buf;
    case VG_OPT_DOUBLE:
        snprintf(buf, len, "a number in %g..%g", o->min, o->max);
        return buf;
    case VG_OPT_DURATION:
        return "a duration like 250ms, 5s, 10m";
    case VG_OPT_BOOL:
        return "true or false";
    case VG_OPT_ENUM:
        snprintf(buf, len, "one of %s", o->choices);
        return buf;
    }
    return "a value";
}

static int enum_has(const char *choices, const char *v)
{
    size_t n = strlen(v);
    for (const char *p = choices; *p;) {
        const char *bar = strchr(p, '|');
        size_t len = bar ? (size_t)(bar - p) : strlen(p);
        if (len == n && strncmp(p, v, n) == 0)
            return 1;
        p += len + (bar != NULL);
    }
    return 0;
}

static vg_err_t set_value(vg_config_t *config, size_t idx, const char *value, const char *where,
                          char *errbuf, size_t errlen)
{
    const vg_option_t *o = &config->table[idx];
    vg_config_value_t v = {0};
    char *end;
    int ok = 1;
    switch (o->type) {
    case VG_OPT_STRING:
        break;
    case VG_OPT_INT:
        errno = 0;
        v.i = strtoll(value, &end, 10);
        ok = *value && !*end && !errno && v.i >= o->min && v.i <= o->max;
        v.d = (double)v.i;
        break;
    case VG_OPT_DOUBLE:
        errno = 0;
        v.d = strtod(value, &end);
        ok = *value && !*end && !errno && isfinite(v.d) && v.d >= o->min && v.d <= o->max;
        break;
    case VG_OPT_DURATION:
        ok = vg_duration_parse(value, &v.i) == VG_OK && v.i >= o->min && v.i <= o->max;
        v.d = (double)v.i;
        break;
    case VG_OPT_BOOL:
        if (!strcmp(value, "true") || !strcmp(value, "yes") || !strcmp(value, "on") ||
            !strcmp(value, "1"))
            v.i = 1;
        else if (!strcmp(value, "false") || !strcmp(value, "no") || !strcmp(value, "off") ||
                 !strcmp(value, "0"))
            v.i = 0;
        else
            ok = 0;
        break;
    case VG_OPT_ENUM:
        ok = enum_has(o->choices, value);
        break;
    }
    if (!ok) {
        char tb[128];
        return vg_errf(errbuf, errlen, VG_ERR_CONFIG, "%s: %s.%s: expected %s, got '%s'", where,
                       o->section, o->key, type_text(o, tb, sizeof(tb)), value);
    }
    v.text = vg_xstrdup(value);
    free(config->values[idx].text);
    config->values[idx] = v;
    return VG_OK;
}

static void kafka_set(vg_config_t *config, const char *key, const char *value)
{
    for (size_t i = 0; i < config->nkafka; i++)
        if (strcmp(config->kafka[i].key, key) == 0) {
            free((char *)config->kafka[i].value);
            config->kafka[i].value = vg_xstrdup(value);
            return;
        }
    config->kafka = vg_xrealloc(config->kafka, (config->nkafka + 1) * sizeof(*config->kafka));
    config->kafka[config->nkafka].key = vg_xstrdup(key);
    config->kafka[config->nkafka].value = vg_xstrdup(value);
    config->nkafka++;
}

vg_err_t vg_config_set(vg_config_t *config, const char *section, const char *key, const char *value,
                       const char *origin, char *errbuf, size_t errlen)
{
    if (strcmp(section, "kafka") == 0) {
        kafka_set(config, key, value);
        return VG_OK;
    }
    int known_section = 0;
    for (size_t i = 0; i < config->n; i++) {
        if (strcmp(config->table[i].section, section) != 0)
            continue;
        known_section = 1;
        if (strcmp(config->table[i].key, key) == 0)
            return set_value(config, i, value, origin, errbuf, errlen);
    }
    if (!known_section)
        return vg_errf(errbuf, errlen, VG_ERR_CONFIG, "%s: unknown section [%s]", origin, section);
    /* List the section's keys: the user most likely mistyped one. */
    vg_buf_t b;
    vg_buf_init(&b);
    for (size_t i = 0; i < config->n; i++)
        if (strcmp(config->table[i].section, section) == 0)
            vg_buf_printf(&b, "%s%s", b.len ? ", " : "", config->table[i].key);
    vg_err_t err =
        vg_errf(errbuf, errlen, VG_ERR_CONFIG, "%s: unknown key '%s' in [%s] (known: %s)", origin,
                key, section, b.data);
    vg_buf_free(&b);
    return err;
}

static char *trim(char *s)
{
    while (isspace((unsigned char)*s))
        s++;
    char *e = s + strlen(s);
    while (e > s && isspace((unsigned char)e[-1]))
        *--e = '\0';
    return s;
}

vg_err_t vg_config_load(vg_config_t *config, const char *path, char *errbuf, size_t errlen)
{
    char *data;
    vg_err_t err = vg_read_file(path, &data, NULL, errbuf, errlen);
    if (err)
        return err;
    char section[128] = "";
    int lineno = 0;
    /* strtok_r would skip empty lines and so miscount them: split by hand. */
    char *line = data;
    while (line) {
        char *nl = strchr(line, '\n');
        if (nl)
            *nl = '\0';
        lineno++;
        char *s = trim(line);
        char where[4200];
        snprintf(where, sizeof(where), "%s:%d", path, lineno);
        if (*s == '\0' || *s == '#' || *s == ';') {
            /* blank or comment */
        } else if (*s == '[') {
            char *close = strchr(s, ']');
            if (!close || trim(close + 1)[0] != '\0') {
                err = vg_errf(errbuf, errlen, VG_ERR_CONFIG, "%s: expected [section], got '%s'",
                              where, s);
                break;
            }
            *close = '\0';
            snprintf(section, sizeof(section), "%s", trim(s + 1));
            int known = strcmp(section, "kafka") == 0;
            for (size_t i = 0; i < config->n && !known; i++)
                known = strcmp(config->table[i].section, section) == 0;
            if (!known) {
                err = vg_errf(errbuf, errlen, VG_ERR_CONFIG, "%s: unknown section [%s]", where,
                              section);
                break;
            }
        } else {
            char *eq = strchr(s, '=');
            if (!eq) {
                err = vg_errf(errbuf, errlen, VG_ERR_CONFIG, "%s: expected key = value, got '%s'",
                              where, s);
                break;
            }
            *eq = '\0';
            char *key = trim(s), *value = trim(eq + 1);
            if (!*section) {
                err = vg_errf(errbuf, errlen, VG_ERR_CONFIG, "%s: key '%s' before any [section]",
                              where, key);
                break;
            }
            if (!*key) {
                err =
                    vg_errf(errbuf, errlen, VG_ERR_CONFIG, "%s: expected a key before '='", where);
                break;
            }
            if ((err = vg_config_set(config, section, key, value, where, errbuf, errlen)))
                break;
        }
        line = nl ? nl + 1 : NULL;
    }
    free(data);
    return err;
}

static size_t find(const vg_config_t *config, const char *section, const char *key)
{
    for (size_t i = 0; i < config->n; i++)
        if (strcmp(config->table[i].section, section) == 0 &&
            strcmp(config->table[i].key, key) == 0)
            return i;
    assert(!"option not declared in the table");
    abort();
}

const char *vg_config_str(const vg_config_t *config, const char *section, const char *key)
{
    return config->values[find(config, section, key)].text;
}

int64_t vg_config_int(const vg_config_t *config, const char *section, const char *key)
{
    return config->values[find(config, section, key)].i;
}

double vg_config_double(const vg_config_t *config, const char *section, const char *key)
{
    return config->values[find(config, section, key)].d;
}

int vg_config_bool(const vg_config_t *config, const char *section, const char *key)
{
    return (int)config->values[find(config, section, key)].i;
}

const vg_kprop_t *vg_config_kafka(const vg_config_t *config, size_t *n)
{
    *n = config->nkafka;
    return config->kafka;
}

void vg_config_help(const vg_option_t *table, size_t n, const char *section, FILE *out)
{
    for (size_t i = 0; i < n; i++) {
        if (strcmp(table[i].section, section) != 0)
            continue;
        char key[64], tb[128];
        snprintf(key, sizeof(key), "%s", table[i].key);
        fprintf(out, "  %-26s %s (%s; default %s)\n", key, table[i].help,
                type_text(&table[i], tb, sizeof(tb)), table[i].def ? table[i].def : "none");
    }
}
