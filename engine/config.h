/*
 * config.h - configuration: an INI file with sections, then command-line overrides.
 *
 * Every option is declared once in a table (section, key, type, default, description), as
 * Fluent Bit does; the table drives parsing, validation, defaults and the help text. The
 * [kafka] section is different: its keys are librdkafka properties, passed through to
 * rd_kafka_conf_set() untouched (and validated there, with file and line on error).
 *
 *   # vigil.ini
 *   [engine]
 *   state = /var/lib/vigil
 *   batch.max.messages = 2000
 *   [kafka]
 *   bootstrap.servers = broker1:9092
 *   security.protocol = SASL_SSL
 *
 * Unknown sections and keys, and bad values, are errors "FILE:LINE: message".
 */
#ifndef VG_CONFIG_H
#define VG_CONFIG_H

#include "engine/common.h"
#include "engine/kafka.h"

typedef enum vg_opt_type {
    VG_OPT_STRING,
    VG_OPT_INT,      /* within [min, max] */
    VG_OPT_DURATION, /* "250ms", "5s", "10m": stored as milliseconds, within [min, max] */
    VG_OPT_BOOL,     /* true/false, yes/no, on/off, 1/0 */
    VG_OPT_ENUM,     /* one of choices, "a|b|c" */
    VG_OPT_DOUBLE,   /* within [min, max] */
} vg_opt_type_t;

typedef struct vg_option {
    const char *section;
    const char *key;
    vg_opt_type_t type;
    const char *def; /* default as text; NULL = unset */
    const char *help;
    double min, max;     /* VG_OPT_INT, VG_OPT_DURATION, VG_OPT_DOUBLE */
    const char *choices; /* VG_OPT_ENUM */
} vg_option_t;

typedef struct vg_config vg_config_t;

/* A configuration over a table of options (borrowed: must outlive the config). */
vg_config_t *vg_config_new(const vg_option_t *table, size_t n);
void vg_config_free(vg_config_t *config);

/* Reads an INI file. Errors: "FILE:LINE: message" in errbuf, VG_ERR_CONFIG or VG_ERR_IO. */
vg_err_t vg_config_load(vg_config_t *config, const char *path, char *errbuf, size_t errlen);
/*
 * Sets "section.key" (or a [kafka] property as "kafka.PROP") from origin (e.g. "--state"),
 * overriding the file. Errors name the origin: "--batch-ms: expected a duration ...".
 */
vg_err_t vg_config_set(vg_config_t *config, const char *section, const char *key, const char *value,
                       const char *origin, char *errbuf, size_t errlen);

/* Typed getters; the option must be in the table with that type (asserted). */
const char *vg_config_str(const vg_config_t *config, const char *section, const char *key);
int64_t vg_config_int(const vg_config_t *config, const char *section, const char *key);
double vg_config_double(const vg_config_t *config, const char *section, const char *key);
int vg_config_bool(const vg_config_t *config, const char *section, const char *key);

/* The [kafka] properties in file order, overrides last. Valid until the config changes. */
const vg_kprop_t *vg_config_kafka(const vg_config_t *config, size_t *n);

/* Prints the options of one section as help text ("  key  (type, default X)  help"). */
void vg_config_help(const vg_option_t *table, size_t n, const char *section, FILE *out);

#endif
