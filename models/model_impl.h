/*
 * model_impl.h - the inside of a vg_model_t, shared by bundle.c, score.c, explain.c and
 * train.c (internal to models/).
 *
 * Invariants: xgb is a valid booster whose feature count is nfeatures; nodes holds every
 * tree of the model, compiled from its JSON dump at load (tree t starts at roots[t]; a node
 * is a leaf when right < 0; a split's left child is the next node and its right child a
 * later one, so no cycle is possible); base_margin + sum of leaves = the C API's margin;
 * bins has nfeatures entries whose arrays the model owns.
 */
#ifndef VG_MODELS_MODEL_IMPL_H
#define VG_MODELS_MODEL_IMPL_H

#include "models/models.h"
#include "models/xgb.h"

/* 16 bytes, so four nodes share a cache line. Nodes are in pre-order: a split's left child
 * is the next node, so only the right child is stored. */
typedef struct vg_tree_node {
    int32_t right; /* absolute index of the right child, -1 for a leaf */
    uint32_t feature;
    float threshold; /* go left when value < threshold; for a leaf, the leaf value */
    uint8_t default_left;
} vg_tree_node_t;

struct vg_model {
    vg_xgb_t *xgb;
    size_t nfeatures;
    char **features;
    char *catalog_version;
    char *manifest_text;
    char version[256];
    vg_feature_bins_t *bins;
    vg_feature_bins_t score_bins; /* the training scores' deciles */

    vg_tree_node_t *nodes;
    double *means; /* per node: hessian-weighted mean of the leaves below (Saabas value) */
    size_t nnodes;
    uint32_t *roots;
    size_t ntrees;
    float base_margin; /* the margin of a model with no trees (from base_score) */
    double bias;       /* base_margin + every tree's root mean: the Saabas bias */

    int nthread; /* what vg_model_score uses (vg_model_set_threads) */

    /* Training provenance, kept for the manifest of a freshly trained model. */
    vg_train_params_t params;
    size_t train_rows;
    size_t train_positives;
    int rounds;
    double valid_ap;
};

/* Allocates a model around xgb (taking ownership) with copies of the feature names, compiles
 * its trees and derives the base margin. On error frees xgb and returns NULL. */
vg_model_t *vg_model_wrap(vg_xgb_t *xgb, const char *const *features, size_t nfeatures,
                          char *errbuf, size_t errlen);

/* Compiles the trees of an XGBoost JSON model dump into model->nodes/roots. */
vg_err_t vg_trees_compile(vg_model_t *model, const char *json, size_t len, char *errbuf,
                          size_t errlen);

/*
 * Checks a model file's bytes (JSON or UBJ) before libxgboost parses them: decodes them
 * itself and verifies everything XGBoost 1.7 trusts when it loads trees (array lengths equal
 * to num_nodes, child, parent and feature indices in range, tree counts), then that the
 * trees compile. VG_OK or VG_ERR_MODEL with a message. *unparsed is set when the bytes are
 * not even well-formed, so the caller can let XGBoost's parser word the error (JSON only).
 */
vg_err_t vg_model_bytes_check(const char *data, size_t len, int *unparsed, char *errbuf,
                              size_t errlen);

typedef struct json_t json_t;
/* Decodes UBJ bytes into a jansson value (new reference), or NULL with a message. */
json_t *vg_ubj_decode(const void *data, size_t len, char *errbuf, size_t errlen);

/* Sum of the leaves the row reaches, in tree order, in float as XGBoost's CPU predictor
 * adds them, starting from start. */
float vg_trees_margin(const vg_model_t *model, const float *row, float start);

#endif
