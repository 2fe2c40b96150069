/*
 * test_config.c - INI loading: values, defaults, overrides, and the exact error for every
 * kind of mistake (file and line included).
 */
#include "engine/config.h"
#include "tests/unit/vg_test.h"

static const vg_option_t table[] = {
    {"engine", "state", VG_OPT_STRING, "state", "state directory", 0, 0, NULL},
    {"engine", "batch.max.messages", VG_OPT_INT, "2000", "batch size", 1, 100000, NULL},
    {"engine", "batch.max.ms", VG_OPT_DURATION, "100ms", "batch time", 1, 60000, NULL},
    {"engine", "processing.guarantee", VG_OPT_ENUM, "exactly_once", "guarantee", 0, 0,
     "exactly_once|at_least_once"},
    {"engine", "explain", VG_OPT_BOOL, "true", "reasons", 0, 0, NULL},
    {"review", "sample.rate", VG_OPT_DOUBLE, "0.001", "sample", 0, 1, NULL},
};

static char *dir;

static const char *load(const char *text, vg_config_t **out)
{
    static char errbuf[VG_ERRLEN];
    char path[4200];
    snprintf(path, sizeof(path), "%s/vigil.ini", dir);
    FILE *f = fopen(path, "w");
    fputs(text, f);
    fclose(f);
    vg_config_t *c = vg_config_new(table, VG_ARRAY_LEN(table));
    vg_err_t err = vg_config_load(c, path, errbuf, sizeof(errbuf));
    if (out && !err) {
        *out = c;
        return "ok";
    }
    vg_config_free(c);
    if (!err)
        return "ok";
    /* strip the temporary directory so expectations read "vigil.ini:3: ..." */
    const char *slash = strrchr(errbuf, '/');
    return slash && strncmp(errbuf, dir, strlen(dir)) == 0 ? slash + 1 : errbuf;
}

static void test_values_and_defaults(void)
{
    vg_config_t *c = NULL;
    VG_CHECK_STR(load("# comment\n\n[engine]\nstate = /var/lib/vigil \nbatch.max.ms=2s\n"
                      "explain = off\n[kafka]\nbootstrap.servers = b1:9092\nlinger.ms=5\n"
                      "[review]\nsample.rate = 0.25\n",
                      &c),
                 "ok");
    VG_CHECK_STR(vg_config_str(c, "engine", "state"), "/var/lib/vigil");
    VG_CHECK_INT(vg_config_int(c, "engine", "batch.max.messages"), 2000);
    VG_CHECK_INT(vg_config_int(c, "engine", "batch.max.ms"), 2000);
    VG_CHECK_INT(vg_config_bool(c, "engine", "explain"), 0);
    VG_CHECK_STR(vg_config_str(c, "engine", "processing.guarantee"), "exactly_once");
    VG_CHECK_NEAR(vg_config_double(c, "review", "sample.rate"), 0.25, 0);
    size_t n;
    const vg_kprop_t *k = vg_config_kafka(c, &n);
    VG_CHECK_INT(n, 2);
    VG_CHECK_STR(k[0].key, "bootstrap.servers");
    VG_CHECK_STR(k[0].value, "b1:9092");
    VG_CHECK_STR(k[1].key, "linger.ms");
    char errbuf[VG_ERRLEN];
    /* command-line overrides */
    VG_CHECK_INT(vg_config_set(c, "engine", "batch.max.messages", "500", "--batch-size", errbuf,
                               sizeof(errbuf)),
                 VG_OK);
    VG_CHECK_INT(vg_config_int(c, "engine", "batch.max.messages"), 500);
    VG_CHECK_INT(vg_config_set(c, "kafka", "linger.ms", "0", "--set", errbuf, sizeof(errbuf)),
                 VG_OK);
    k = vg_config_kafka(c, &n);
    VG_CHECK_INT(n, 2);
    VG_CHECK_STR(k[1].value, "0");
    VG_CHECK_INT(vg_config_set(c, "engine", "processing.guarantee", "maybe_once", "--guarantee",
                               errbuf, sizeof(errbuf)),
                 VG_ERR_CONFIG);
    VG_CHECK_STR(errbuf, "--guarantee: engine.processing.guarantee: expected one of "
                         "exactly_once|at_least_once, got 'maybe_once'");
    vg_config_free(c);
}

static void test_errors(void)
{
    VG_CHECK_STR(load("[engine]\nstat = x\n", NULL),
                 "vigil.ini:2: unknown key 'stat' in [engine] (known: state, batch.max.messages, "
                 "batch.max.ms, processing.guarantee, explain)");
    VG_CHECK_STR(load("[engin]\n", NULL), "vigil.ini:1: unknown section [engin]");
    VG_CHECK_STR(load("state = x\n", NULL), "vigil.ini:1: key 'state' before any [section]");
    VG_CHECK_STR(load("[engine]\n\n\nbatch.max.messages = lots\n", NULL),
                 "vigil.ini:4: engine.batch.max.messages: expected an integer in 1..100000, got "
                 "'lots'");
    VG_CHECK_STR(load("[engine]\nbatch.max.messages = 0\n", NULL),
                 "vigil.ini:2: engine.batch.max.messages: expected an integer in 1..100000, got "
                 "'0'");
    VG_CHECK_STR(load("[engine]\nbatch.max.ms = soon\n", NULL),
                 "vigil.ini:2: engine.batch.max.ms: expected a duration like 250ms, 5s, 10m, got "
                 "'soon'");
    VG_CHECK_STR(load("[engine]\nexplain = perhaps\n", NULL),
                 "vigil.ini:2: engine.explain: expected true or false, got 'perhaps'");
    VG_CHECK_STR(load("[review]\nsample.rate = 2\n", NULL),
                 "vigil.ini:2: review.sample.rate: expected a number in 0..1, got '2'");
    VG_CHECK_STR(load("[engine]\njust words\n", NULL),
                 "vigil.ini:2: expected key = value, got 'just words'");
    VG_CHECK_STR(load("[engine\n", NULL), "vigil.ini:1: expected [section], got '[engine'");
    char errbuf[VG_ERRLEN];
    vg_config_t *c = vg_config_new(table, VG_ARRAY_LEN(table));
    VG_CHECK_INT(vg_config_load(c, "/nonexistent/vigil.ini", errbuf, sizeof(errbuf)), VG_ERR_IO);
    VG_CHECK_STR(errbuf, "/nonexistent/vigil.ini: No such file or directory");
    vg_config_free(c);
}

int main(void)
{
    dir = vg_test_tmpdir();
    VG_RUN(test_values_and_defaults);
    VG_RUN(test_errors);
    char cmd[4200];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    if (system(cmd) != 0)
        return 1;
    free(dir);
    return vg_test_done();
}
