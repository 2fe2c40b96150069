/*
 * explain.c - the model's trees compiled into a flat array, and reason codes from them.
 *
 * At load the XGBoost JSON dump (whatever format the bundle stores, the booster re-serializes
 * to JSON) is compiled into 16-byte vg_tree_node_t nodes, renumbered in pre-order so that a
 * split's left child is the next node and every child's index is above its parent's, after checking
 * every index: a corrupt or hostile model cannot make traversal loop or read out of bounds. Each
 * node also gets its Saabas value, the hessian-weighted mean of the leaves below it (the same node
 * means XGBoost's own approximate contributions use).
 *
 * Reason codes are Saabas path attributions: walking a row down a tree, the change in node
 * mean at each split is credited to the split's feature. Per tree this telescopes from the
 * root mean to the leaf value, so bias (base margin + root means) + contributions = the
 * margin exactly, at O(depth) per tree, against TreeSHAP's O(leaves * depth^2).
 */
#include "models/model_impl.h"

#include <assert.h>
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* The arrays of one tree in XGBoost's JSON schema; all of length n. */
typedef struct tree_json {
    json_t *left, *right, *split_indices, *split_conditions, *default_left, *sum_hessian,
        *split_type, *parents;
    size_t n;
} tree_json_t;

/* Parses a decimal count XGBoost stores as a string ("num_nodes": "63"); -1 if invalid. */
static long count_str(json_t *v)
{
    const char *s = json_string_value(v);
    char *end = NULL;
    long n = s ? strtol(s, &end, 10) : -1;
    return s && end != s && !*end && n >= 0 && n < 100000000 ? n : -1;
}

static vg_err_t tree_arrays(json_t *tree, size_t t, tree_json_t *tj, char *errbuf, size_t errlen)
{
    /* Every per-node array XGBoost's RegTree::LoadModel reads, first the ones vigil uses. */
    static const char *const names[] = {
        "left_children", "right_children", "split_indices", "split_conditions", "default_left",
        "sum_hessian",   "parents",        "loss_changes",  "base_weights",     "split_type"};
    json_t *arrays[VG_ARRAY_LEN(names)];
    long num_nodes = count_str(json_object_get(json_object_get(tree, "tree_param"), "num_nodes"));
    if (num_nodes < 1)
        return vg_errf(errbuf, errlen, VG_ERR_MODEL, "tree %zu has no valid num_nodes", t);
    tj->n = (size_t)num_nodes;
    json_t *tparam = json_object_get(tree, "tree_param");
    long deleted = count_str(json_object_get(tparam, "num_deleted"));
    long tleaf = count_str(json_object_get(tparam, "size_leaf_vector"));
    if (deleted < 0 || deleted >= num_nodes || tleaf != 0)
        return vg_errf(errbuf, errlen, VG_ERR_MODEL,
                       "tree %zu: bad num_deleted or size_leaf_vector", t);
    for (size_t i = 0; i < VG_ARRAY_LEN(names); i++) {
        json_t *a = json_object_get(tree, names[i]);
        if (!json_is_array(a))
            return vg_errf(errbuf, errlen, VG_ERR_MODEL, "tree %zu has no array \"%s\"", t,
                           names[i]);
        if (json_array_size(a) != tj->n)
            return vg_errf(errbuf, errlen, VG_ERR_MODEL,
                           "tree %zu: \"%s\" has %zu entries for %zu nodes", t, names[i],
                           json_array_size(a), tj->n);
        for (size_t k = 0; k < tj->n; k++)
            if (!json_is_number(json_array_get(a, k)) && !json_is_boolean(json_array_get(a, k)))
                return vg_errf(errbuf, errlen, VG_ERR_MODEL, "tree %zu: \"%s\" holds a non-number",
                               t, names[i]);
        arrays[i] = a;
    }
    tj->left = arrays[0];
    tj->right = arrays[1];
    tj->split_indices = arrays[2];
    tj->split_conditions = arrays[3];
    tj->default_left = arrays[4];
    tj->sum_hessian = arrays[5];
    tj->parents = arrays[6];
    tj->split_type = arrays[9];
    /* vigil refuses categorical splits, so every categories array must be empty. */
    static const char *const cats[] = {"categories", "categories_nodes", "categories_segments",
                                       "categories_sizes"};
    for (size_t i = 0; i < VG_ARRAY_LEN(cats); i++) {
        json_t *a = json_object_get(tree, cats[i]);
        if (a && json_array_size(a) != 0)
            return vg_errf(errbuf, errlen, VG_ERR_MODEL,
                           "tree %zu: categorical splits are not supported", t);
    }
    return VG_OK;
}

static double num_at(json_t *a, size_t i)
{
    json_t *v = json_array_get(a, i);
    return json_is_boolean(v) ? (double)json_is_true(v) : json_number_value(v);
}

/* Appends tree t to model->nodes: checks it, renumbers it in pre-order, computes means. */
static vg_err_t compile_tree(vg_model_t *model, json_t *tree, size_t t, size_t *cap, char *errbuf,
                             size_t errlen)
{
    tree_json_t tj = {0};
    vg_err_t err = tree_arrays(tree, t, &tj, errbuf, errlen);
    if (err)
        return err;
    size_t n = tj.n;
    int32_t *newid = vg_xmalloc(n * sizeof(*newid));
    size_t *order = vg_xmalloc(n * sizeof(*order)), *stack = vg_xmalloc(n * sizeof(*stack));
    for (size_t i = 0; i < n; i++)
        newid[i] = -1;
    /* Pre-order walk from the root; visiting a node twice means a cycle or a shared child. */
    size_t norder = 0, sp = 0;
    stack[sp++] = 0;
    while (sp) {
        size_t id = stack[--sp];
        if (newid[id] >= 0) {
            err = vg_errf(errbuf, errlen, VG_ERR_MODEL, "tree %zu: node %zu reached twice", t, id);
            goto out;
        }
        newid[id] = (int32_t)norder;
        order[norder++] = id;
        double l = num_at(tj.left, id), r = num_at(tj.right, id);
        if (l == -1.0 && r == -1.0)
            continue;
        if (!(l >= 1 && l < (double)n && r >= 1 && r < (double)n) || l != floor(l) ||
            r != floor(r)) {
            err =
                vg_errf(errbuf, errlen, VG_ERR_MODEL, "tree %zu: node %zu has bad children", t, id);
            goto out;
        }
        if (num_at(tj.parents, (size_t)l) != (double)id ||
            num_at(tj.parents, (size_t)r) != (double)id) {
            err = vg_errf(errbuf, errlen, VG_ERR_MODEL, "tree %zu: node %zu's children disown it",
                          t, id);
            goto out;
        }
        double f = num_at(tj.split_indices, id);
        if (!(f >= 0 && f < (double)model->nfeatures)) {
            err = vg_errf(errbuf, errlen, VG_ERR_MODEL,
                          "tree %zu: node %zu splits on feature %g of %zu", t, id, f,
                          model->nfeatures);
            goto out;
        }
        if (json_is_array(tj.split_type) && num_at(tj.split_type, id) != 0) {
            err = vg_errf(errbuf, errlen, VG_ERR_MODEL,
                          "tree %zu: categorical splits are not supported", t);
            goto out;
        }
        if (sp + 2 > n) {
            err = vg_errf(errbuf, errlen, VG_ERR_MODEL, "tree %zu: malformed at node %zu", t, id);
            goto out;
        }
        stack[sp++] = (size_t)r; /* left first in pre-order */
        stack[sp++] = (size_t)l;
    }
    if (model->nnodes + norder > *cap) {
        *cap = (model->nnodes + norder) * 2;
        model->nodes = vg_xrealloc(model->nodes, *cap * sizeof(*model->nodes));
        model->means = vg_xrealloc(model->means, *cap * sizeof(*model->means));
    }
    size_t base = model->nnodes;
    for (size_t k = 0; k < norder; k++) {
        size_t id = order[k];
        vg_tree_node_t *node = &model->nodes[base + k];
        double l = num_at(tj.left, id);
        node->threshold = (float)num_at(tj.split_conditions, id);
        node->default_left = num_at(tj.default_left, id) != 0;
        if (l == -1.0) {
            node->right = -1;
            node->feature = 0;
        } else {
            /* The pre-order walk visits a left child right after its parent. */
            assert(newid[(size_t)l] == (int32_t)k + 1);
            node->right = (int32_t)base + newid[(size_t)num_at(tj.right, id)];
            node->feature = (uint32_t)num_at(tj.split_indices, id);
        }
    }
    /* Node means bottom-up: reverse pre-order sees children before parents. */
    double *means = model->means;
    for (size_t k = norder; k-- > 0;) {
        const vg_tree_node_t *node = &model->nodes[base + k];
        if (node->right < 0) {
            means[base + k] = node->threshold;
            continue;
        }
        size_t left = base + k + 1, right = (size_t)node->right;
        double hl = num_at(tj.sum_hessian, order[left - base]);
        double hr = num_at(tj.sum_hessian, order[right - base]);
        means[base + k] = hl + hr > 0 ? (means[left] * hl + means[right] * hr) / (hl + hr)
                                      : 0.5 * (means[left] + means[right]);
    }
    model->roots[t] = (uint32_t)base;
    model->nnodes += norder;
out:
    free(newid);
    free(order);
    free(stack);
    return err;
}

/* The base margin from learner_model_param.base_score, as XGBoost 1.7 derives it for the
 * logistic objectives (ProbToMargin, in float). */
static vg_err_t base_margin(vg_model_t *model, json_t *learner, char *errbuf, size_t errlen)
{
    json_t *obj = json_object_get(json_object_get(learner, "objective"), "name");
    json_t *bs = json_object_get(json_object_get(learner, "learner_model_param"), "base_score");
    const char *name = json_string_value(obj);
    if (!name)
        return vg_errf(errbuf, errlen, VG_ERR_MODEL, "model has no objective");
    if (strcmp(name, "binary:logistic") != 0 && strcmp(name, "binary:logitraw") != 0 &&
        strcmp(name, "reg:logistic") != 0)
        return vg_errf(errbuf, errlen, VG_ERR_MODEL,
                       "model objective %s is not a binary classifier", name);
    const char *s = json_string_value(bs);
    char *end = NULL;
    float score = s ? strtof(s, &end) : NAN;
    if (!s || end == s || *end || !(score > 0.0f && score < 1.0f))
        return vg_errf(errbuf, errlen, VG_ERR_MODEL, "model has no usable base_score");
    model->base_margin = -logf(1.0f / score - 1.0f);
    return VG_OK;
}

/* Compiles the trees of a parsed model document (see vg_trees_compile). */
static vg_err_t compile_doc(vg_model_t *model, json_t *root, char *errbuf, size_t errlen)
{
    json_t *learner = json_object_get(root, "learner");
    json_t *gb = json_object_get(learner, "gradient_booster");
    const char *gbname = json_string_value(json_object_get(gb, "name"));
    json_t *gbmodel = json_object_get(gb, "model");
    json_t *trees = json_object_get(gbmodel, "trees");
    if (!gbname || strcmp(gbname, "gbtree") != 0 || !json_is_array(trees))
        return vg_errf(errbuf, errlen, VG_ERR_MODEL, "model is not a gbtree booster");
    size_t ntrees = json_array_size(trees);
    json_t *info = json_object_get(gbmodel, "tree_info");
    long declared =
        count_str(json_object_get(json_object_get(gbmodel, "gbtree_model_param"), "num_trees"));
    if (declared != (long)ntrees || json_array_size(info) != ntrees)
        return vg_errf(errbuf, errlen, VG_ERR_MODEL, "model declares %ld trees and holds %zu",
                       declared, ntrees);
    for (size_t t = 0; t < ntrees; t++)
        if (!json_is_integer(json_array_get(info, t)) ||
            json_integer_value(json_array_get(info, t)) != 0)
            return vg_errf(errbuf, errlen, VG_ERR_MODEL,
                           "model has more than one output group (multi-class?)");
    vg_err_t err = base_margin(model, learner, errbuf, errlen);
    if (err)
        return err;
    free(model->roots);
    free(model->nodes);
    free(model->means);
    model->nodes = NULL;
    model->means = NULL;
    model->nnodes = 0;
    model->ntrees = ntrees;
    model->roots = vg_xcalloc(ntrees ? ntrees : 1, sizeof(*model->roots));
    size_t cap = 0;
    model->bias = model->base_margin;
    for (size_t t = 0; t < ntrees; t++) {
        /* libxgboost places each tree at its "id": a repeated id leaves a hole it later
         * dereferences (found by tests/fuzz/fuzz_model.c). */
        json_t *id = json_object_get(json_array_get(trees, t), "id");
        if (!json_is_integer(id) || json_integer_value(id) != (json_int_t)t)
            return vg_errf(errbuf, errlen, VG_ERR_MODEL, "tree %zu has id %s", t,
                           json_is_integer(id) ? "out of order" : "missing");
        if ((err = compile_tree(model, json_array_get(trees, t), t, &cap, errbuf, errlen)))
            return err;
        model->bias += model->means[model->roots[t]];
    }
    return VG_OK;
}

vg_err_t vg_trees_compile(vg_model_t *model, const char *json, size_t len, char *errbuf,
                          size_t errlen)
{
    json_error_t jerr;
    json_t *root = json_loadb(json, len, 0, &jerr);
    if (!root)
        return vg_errf(errbuf, errlen, VG_ERR_MODEL, "model JSON: %s", jerr.text);
    vg_err_t err = compile_doc(model, root, errbuf, errlen);
    json_decref(root);
    return err;
}

vg_err_t vg_model_bytes_check(const char *data, size_t len, int *unparsed, char *errbuf,
                              size_t errlen)
{
    *unparsed = 0;
    json_t *root = NULL;
    /* Bundles hold JSON or UBJ models, both objects starting with '{'. */
    if (len == 0 || data[0] != '{')
        return vg_errf(errbuf, errlen, VG_ERR_MODEL,
                       "not an XGBoost JSON or UBJ model (first byte 0x%02x)",
                       len ? (unsigned char)data[0] : 0);
    if (len >= 2 && data[0] == '{' && data[1] == '"') {
        json_error_t jerr;
        root = json_loadb(data, len, 0, &jerr);
        if (!root) {
            *unparsed = 1;
            return vg_errf(errbuf, errlen, VG_ERR_MODEL, "invalid JSON: %s", jerr.text);
        }
    } else {
        root = vg_ubj_decode(data, len, errbuf, errlen);
        if (!root)
            return VG_ERR_MODEL;
    }
    vg_model_t scratch = {0};
    long nf = count_str(json_object_get(
        json_object_get(json_object_get(root, "learner"), "learner_model_param"), "num_feature"));
    vg_err_t err = VG_OK;
    if (nf < 1 || nf > 1000000)
        err = vg_errf(errbuf, errlen, VG_ERR_MODEL, "model has no valid num_feature");
    /* Parameters libxgboost sizes arrays and loops by: only the values a single-output
     * binary model has are accepted. */
    json_t *learner = json_object_get(root, "learner");
    json_t *lmp = json_object_get(learner, "learner_model_param");
    json_t *gmp =
        json_object_get(json_object_get(json_object_get(learner, "gradient_booster"), "model"),
                        "gbtree_model_param");
    long num_class = count_str(json_object_get(lmp, "num_class"));
    long num_target =
        json_object_get(lmp, "num_target") ? count_str(json_object_get(lmp, "num_target")) : 1;
    long parallel = count_str(json_object_get(gmp, "num_parallel_tree"));
    long leafvec = count_str(json_object_get(gmp, "size_leaf_vector"));
    if (!err &&
        (num_class > 1 || num_class < 0 || num_target != 1 || parallel != 1 || leafvec != 0))
        err = vg_errf(errbuf, errlen, VG_ERR_MODEL,
                      "not a single-output binary model (num_class, num_target, "
                      "num_parallel_tree or size_leaf_vector)");
    if (!err) {
        scratch.nfeatures = (size_t)nf;
        static const char *const info[] = {"feature_names", "feature_types"};
        for (size_t i = 0; i < 2 && !err; i++) {
            json_t *a = json_object_get(learner, info[i]);
            size_t n = json_array_size(a);
            for (size_t k = 0; k < n && !err; k++)
                if (!json_is_string(json_array_get(a, k)))
                    err =
                        vg_errf(errbuf, errlen, VG_ERR_MODEL, "\"%s\" holds a non-string", info[i]);
            if (!err && a && (!json_is_array(a) || (n != 0 && n != (size_t)nf)))
                err = vg_errf(errbuf, errlen, VG_ERR_MODEL,
                              "\"%s\" has %zu entries for %ld features", info[i], n, nf);
        }
        if (!err)
            err = compile_doc(&scratch, root, errbuf, errlen);
    }
    free(scratch.nodes);
    free(scratch.means);
    free(scratch.roots);
    json_decref(root);
    return err;
}

/* The child a row goes to at split node id. */
static inline int32_t next_node(const vg_tree_node_t *nodes, int32_t id, const float *row)
{
    const vg_tree_node_t *node = &nodes[id];
    float v = row[node->feature];
    if (isnan(v))
        return node->default_left ? id + 1 : node->right;
    return v < node->threshold ? id + 1 : node->right;
}

float vg_trees_margin(const vg_model_t *model, const float *row, float start)
{
    float sum = start;
    const vg_tree_node_t *nodes = model->nodes;
    for (size_t t = 0; t < model->ntrees; t++) {
        int32_t id = (int32_t)model->roots[t];
        while (nodes[id].right >= 0)
            id = next_node(nodes, id, row);
        sum += nodes[id].threshold;
    }
    return sum;
}

void vg_model_contribs(const vg_model_t *model, const float *row, double *contribs, double *bias)
{
    memset(contribs, 0, model->nfeatures * sizeof(*contribs));
    const vg_tree_node_t *nodes = model->nodes;
    const double *means = model->means;
    for (size_t t = 0; t < model->ntrees; t++) {
        int32_t id = (int32_t)model->roots[t];
        while (nodes[id].right >= 0) {
            int32_t next = next_node(nodes, id, row);
            contribs[nodes[id].feature] += means[next] - means[id];
            id = next;
        }
    }
    *bias = model->bias;
}

vg_err_t vg_model_explain(vg_model_t *model, const float *row, size_t k, vg_reason_t *out,
                          size_t *nout, char *errbuf, size_t errlen)
{
    double bias, local[256];
    /* Per call, not in the model: several threads may explain with one model at once. */
    double *c = model->nfeatures <= 256 ? local : vg_xmalloc(model->nfeatures * sizeof(double));
    *nout = 0;
    if (k == 0) {
        if (c != local)
            free(c);
        return VG_OK;
    }
    vg_model_contribs(model, row, c, &bias);
    if (k > model->nfeatures)
        k = model->nfeatures;
    /* Partial selection: k is small (a handful of reasons), nfeatures a few dozen. */
    size_t n = 0;
    for (size_t f = 0; f < model->nfeatures; f++) {
        float a = fabsf((float)c[f]);
        size_t pos = n;
        while (pos > 0 && fabsf(out[pos - 1].contribution) < a)
            pos--;
        if (pos >= k)
            continue;
        size_t last = n < k ? n : k - 1;
        memmove(&out[pos + 1], &out[pos], (last - pos) * sizeof(*out));
        out[pos].feature = (uint32_t)f;
        out[pos].value = row[f];
        out[pos].contribution = (float)c[f];
        if (n < k)
            n++;
    }
    *nout = n;
    if (c != local)
        free(c);
    return VG_OK;
}
