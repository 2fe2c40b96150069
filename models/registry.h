/*
 * registry.h - the model registry: a directory of numbered bundles and a champion.
 *
 *   REG/versions/0001/   a bundle (manifest.json + model file), never modified once added
 *   REG/versions/0002/
 *   REG/champion         "0002\n": the bundle the engine serves
 *
 * Adding copies a bundle into REG/versions/NNNN.tmp and renames it into place; promoting
 * rewrites REG/champion through a temporary file and rename. A reader (the engine polling
 * for a new champion) therefore sees a whole bundle or none, the old champion or the new.
 * Version numbers only grow. Whether a candidate deserves promotion is the caller's decision
 * (vigil model promote evaluates both on the same window); the registry only records it.
 */
#ifndef VG_MODELS_REGISTRY_H
#define VG_MODELS_REGISTRY_H

#include <stddef.h>

#include "engine/common.h"

/* Adds the bundle in dir as the next version (created registry if missing) after checking
 * that it loads; *version gets its number. */
vg_err_t vg_registry_add(const char *reg, const char *dir, int *version, char *errbuf,
                         size_t errlen);

/* The registered version numbers, ascending, in a malloc'd array the caller frees (NULL and
 * 0 for an empty or missing registry). */
vg_err_t vg_registry_list(const char *reg, int **versions, size_t *n, char *errbuf, size_t errlen);

/* The champion's number and bundle path ("REG/versions/NNNN"); VG_ERR_NOTFOUND (with a
 * message) when there is none yet, which is a normal state. */
vg_err_t vg_registry_champion(const char *reg, int *version, char *path, size_t pathlen,
                              char *errbuf, size_t errlen);

/* Makes a registered version the champion: REG/champion names it and the symlink REG/current
 * points at its bundle (an engine run with --model REG/current reloads into each new
 * champion). VG_ERR_NOTFOUND if it does not exist. */
vg_err_t vg_registry_promote(const char *reg, int version, char *errbuf, size_t errlen);

#endif
