/*
 * fuzz_catalog.c - libFuzzer harness for the catalogue parser: any bytes must either load
 * (and then every feature has a name and the catalogue frees cleanly) or fail with a
 * "NAME:LINE: " message; never crash, leak or overflow.
 */
#include "features/features.h"

#include <assert.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    vg_schema_t schema;
    vg_schema_init(&schema);
    char eb[VG_ERRLEN] = "";
    vg_catalog_t *c = vg_catalog_parse("fuzz", (const char *)data, size, &schema, eb, sizeof(eb));
    if (c) {
        for (size_t i = 0; i < vg_catalog_size(c); i++)
            assert(vg_catalog_feature_name(c, i) != NULL);
        assert(strlen(vg_catalog_version(c)) == 16);
    } else {
        assert(strncmp(eb, "fuzz:", 5) == 0);
    }
    vg_catalog_free(c);
    vg_schema_free(&schema);
    return 0;
}
