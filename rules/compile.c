/*
 * compile.c - loading a rule set: name resolution, type checking, code generation, the
 * error report and the content version.
 *
 * Each condition becomes a run of vg_insn_t in one shared code array, ending in OP_END.
 * Types are checked before any code is emitted for a rule, so a rule either compiles whole
 * or adds nothing. The stack depth of every program is computed here and bounded by
 * VG_RULES_STACK, which is what lets eval.c use a fixed array on the C stack.
 *
 * Names resolve in this order: `score`, a feature, a numeric transaction field (amount,
 * lat, lon), a string field of the schema. A feature named like a numeric field (the
 * catalogue's `amount`) therefore wins, which is harmless: it holds the same value.
 */
#include "rules/rules_int.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* ---- errors ---- */

void vg_rules_error(vg_rules_errs_t *errs, int line, int col, const char *fmt, ...)
{
    if (errs->n >= VG_RULES_MAX_ERRORS) {
        errs->dropped++;
        return;
    }
    char msg[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (errs->n == errs->cap) {
        errs->cap = errs->cap ? errs->cap * 2 : 8;
        errs->v = vg_xrealloc(errs->v, errs->cap * sizeof(*errs->v));
    }
    errs->v[errs->n].line = line;
    errs->v[errs->n].col = col;
    errs->v[errs->n++].msg = vg_xstrdup(msg);
}

void vg_rules_errs_flush(vg_rules_errs_t *errs, char *buf, size_t cap)
{
    /* Insertion sort: stable, so errors at one position keep the order they were found. */
    for (size_t i = 1; i < errs->n; i++) {
        vg_rules_errmsg_t e = errs->v[i];
        size_t j = i;
        while (j > 0 && (errs->v[j - 1].line > e.line ||
                         (errs->v[j - 1].line == e.line && errs->v[j - 1].col > e.col))) {
            errs->v[j] = errs->v[j - 1];
            j--;
        }
        errs->v[j] = e;
    }
    size_t len = 0;
    if (buf && cap)
        buf[0] = '\0';
    for (size_t i = 0; i <= errs->n; i++) {
        char line[512];
        if (i < errs->n)
            snprintf(line, sizeof(line), "%s:%d:%d: %s\n", errs->file, errs->v[i].line,
                     errs->v[i].col, errs->v[i].msg);
        else if (errs->dropped)
            snprintf(line, sizeof(line), "%s: %zu more errors not shown\n", errs->file,
                     errs->dropped);
        else
            break;
        size_t n = strlen(line);
        if (buf && len + n < cap) {
            memcpy(buf + len, line, n + 1);
            len += n;
        }
        if (i < errs->n)
            free(errs->v[i].msg);
    }
    free(errs->v);
    errs->v = NULL;
    errs->n = errs->cap = 0;
}

/* ---- suggestions ---- */

static size_t min3(size_t a, size_t b, size_t c)
{
    size_t m = a < b ? a : b;
    return m < c ? m : c;
}

/* Edit distance counting insertions, deletions, substitutions and swaps of two adjacent
 * characters (optimal string alignment: "nigth" is one edit from "night"), or a large
 * number when either name is too long to bother. */
static size_t edit_distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    if (la > 63 || lb > 63)
        return 1000;
    size_t d[64][64];
    for (size_t i = 0; i <= la; i++)
        d[i][0] = i;
    for (size_t j = 0; j <= lb; j++)
        d[0][j] = j;
    for (size_t i = 1; i <= la; i++) {
        for (size_t j = 1; j <= lb; j++) {
            size_t cost = a[i - 1] != b[j - 1];
            d[i][j] = min3(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost);
            if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] &&
                d[i - 2][j - 2] + 1 < d[i][j])
                d[i][j] = d[i - 2][j - 2] + 1;
        }
    }
    return d[la][lb];
}

static void consider(const char *name, const char *cand, const char **best, size_t *bestd)
{
    size_t d = edit_distance(name, cand);
    if (d < *bestd) {
        *bestd = d;
        *best = cand;
    }
}

/* The closest known name, if close enough to be a typo: at most a third of the name's
 * length, and never more than 3 edits. */
static const char *suggest(const vg_compiler_t *cc, const char *name)
{
    static const char *const numeric[] = {"score", "amount", "lat", "lon"};
    const char *best = NULL;
    size_t bestd = (size_t)-1;
    for (size_t i = 0; i < cc->env->nfeatures; i++)
        consider(name, cc->env->features[i], &best, &bestd);
    for (size_t i = 0; i < VG_ARRAY_LEN(numeric); i++)
        consider(name, numeric[i], &best, &bestd);
    for (size_t i = 0; i < cc->schema->nfields; i++)
        consider(name, cc->schema->names[i], &best, &bestd);
    size_t limit = strlen(name) / 3;
    if (limit > 3)
        limit = 3;
    if (limit < 1)
        limit = 1;
    return best && bestd <= limit ? best : NULL;
}

/* ---- type checking ---- */

typedef enum vtype { T_ERR = 0, T_NUM, T_BOOL, T_STR } vtype_t;

enum { R_FEATURE = 1, R_AMOUNT, R_LAT, R_LON, R_FIELD };

static const char *op_text(vg_tok_t op)
{
    switch (op) {
    case TK_PLUS:
        return "+";
    case TK_MINUS:
        return "-";
    case TK_STAR:
        return "*";
    case TK_SLASH:
        return "/";
    case TK_LT:
        return "<";
    case TK_LE:
        return "<=";
    case TK_GT:
        return ">";
    case TK_GE:
        return ">=";
    case TK_EQ:
        return "==";
    case TK_NE:
        return "!=";
    case TK_AND:
        return "and";
    case TK_OR:
        return "or";
    default:
        return "?";
    }
}

/* "a number", "a condition", "string field channel", "string \"ecom\"". */
static void describe(const vg_ast_t *ast, int n, vtype_t t, char *out, size_t outlen)
{
    const vg_node_t *node = &ast->nodes[n];
    if (t == T_NUM)
        snprintf(out, outlen, "a number");
    else if (t == T_BOOL)
        snprintf(out, outlen, "a condition");
    else if (node->kind == N_STR)
        snprintf(out, outlen, "string \"%.40s\"", node->str);
    else if (node->kind == N_IDENT)
        snprintf(out, outlen, "string field %s", node->str);
    else
        snprintf(out, outlen, "a string");
}

static int resolve(vg_compiler_t *cc, vg_node_t *node)
{
    for (size_t i = 0; i < cc->env->nfeatures; i++) {
        if (strcmp(cc->env->features[i], node->str) == 0) {
            node->res = R_FEATURE;
            node->idx = (int)i;
            return T_NUM;
        }
    }
    if (strcmp(node->str, "amount") == 0) {
        node->res = R_AMOUNT;
        return T_NUM;
    }
    if (strcmp(node->str, "lat") == 0) {
        node->res = R_LAT;
        return T_NUM;
    }
    if (strcmp(node->str, "lon") == 0) {
        node->res = R_LON;
        return T_NUM;
    }
    int f = vg_schema_field(cc->schema, node->str);
    if (f >= 0) {
        node->res = R_FIELD;
        node->idx = f;
        return T_STR;
    }
    const char *s = suggest(cc, node->str);
    if (s)
        vg_rules_error(cc->errs, node->line, node->col, "unknown feature %.64s (did you mean %s?)",
                       node->str, s);
    else
        vg_rules_error(cc->errs, node->line, node->col, "unknown feature %.64s", node->str);
    return T_ERR;
}

/* The list's index in the set, loading it on first use; -1 when it cannot be read. */
static int list_handle(vg_compiler_t *cc, const vg_node_t *node)
{
    vg_rules_t *rs = cc->rules;
    for (size_t i = 0; i < rs->nlists; i++)
        if (strcmp(rs->lists[i].name, node->str) == 0)
            return (int)i;
    for (size_t i = 0; i < cc->nmissing; i++)
        if (strcmp(cc->missing_lists[i], node->str) == 0)
            return -1;
    vg_list_t list;
    char eb[VG_ERRLEN];
    if (vg_list_load(&list, cc->lists_dir, node->str, eb, sizeof(eb)) != VG_OK) {
        vg_rules_error(cc->errs, node->line, node->col, "cannot read list @%s: %s", node->str, eb);
        cc->missing_lists =
            vg_xrealloc(cc->missing_lists, (cc->nmissing + 1) * sizeof(*cc->missing_lists));
        cc->missing_lists[cc->nmissing++] = vg_xstrdup(node->str);
        return -1;
    }
    if (rs->nlists == cc->lists_cap) {
        cc->lists_cap = cc->lists_cap ? cc->lists_cap * 2 : 4;
        rs->lists = vg_xrealloc(rs->lists, cc->lists_cap * sizeof(*rs->lists));
    }
    rs->lists[rs->nlists] = list;
    return (int)rs->nlists++;
}

static vtype_t check(vg_compiler_t *cc, vg_ast_t *ast, int n, int *uses_score)
{
    vg_node_t *node = &ast->nodes[n];
    char da[96], db[96];
    switch (node->kind) {
    case N_NUM:
        return T_NUM;
    case N_STR:
        return T_STR;
    case N_SCORE:
        *uses_score = 1;
        return T_NUM;
    case N_IDENT:
        return resolve(cc, node);
    case N_NEG: {
        vtype_t a = check(cc, ast, node->a, uses_score);
        if (a == T_ERR || a == T_NUM)
            return a;
        describe(ast, node->a, a, da, sizeof(da));
        vg_rules_error(cc->errs, node->line, node->col,
                       "type mismatch: '-' needs a number, found %s", da);
        return T_ERR;
    }
    case N_ARITH:
    case N_CMP: {
        vtype_t a = check(cc, ast, node->a, uses_score);
        vtype_t b = check(cc, ast, node->b, uses_score);
        if (a == T_ERR || b == T_ERR)
            return T_ERR;
        int equality = node->op == TK_EQ || node->op == TK_NE;
        if (a == T_NUM && b == T_NUM)
            return node->kind == N_CMP ? T_BOOL : T_NUM;
        if (node->kind == N_CMP && equality && a == T_STR && b == T_STR)
            return T_BOOL;
        describe(ast, node->a, a, da, sizeof(da));
        describe(ast, node->b, b, db, sizeof(db));
        if (node->kind == N_CMP && equality && a != T_BOOL && b != T_BOOL)
            vg_rules_error(cc->errs, node->line, node->col,
                           "type mismatch: cannot compare %s with %s", da, db);
        else if (node->kind == N_CMP && equality)
            vg_rules_error(cc->errs, node->line, node->col,
                           "type mismatch: '%s' needs numbers or strings, found %s",
                           op_text(node->op), a == T_BOOL ? da : db);
        else
            vg_rules_error(cc->errs, node->line, node->col,
                           "type mismatch: '%s' needs numbers, found %s", op_text(node->op),
                           a != T_NUM ? da : db);
        return T_ERR;
    }
    case N_AND:
    case N_OR: {
        vtype_t a = check(cc, ast, node->a, uses_score);
        vtype_t b = check(cc, ast, node->b, uses_score);
        if (a == T_ERR || b == T_ERR)
            return T_ERR;
        if (a == T_BOOL && b == T_BOOL)
            return T_BOOL;
        describe(ast, a != T_BOOL ? node->a : node->b, a != T_BOOL ? a : b, da, sizeof(da));
        vg_rules_error(cc->errs, node->line, node->col,
                       "type mismatch: '%s' needs conditions, found %s", op_text(node->op), da);
        return T_ERR;
    }
    case N_NOT: {
        vtype_t a = check(cc, ast, node->a, uses_score);
        if (a == T_ERR || a == T_BOOL)
            return a;
        describe(ast, node->a, a, da, sizeof(da));
        vg_rules_error(cc->errs, node->line, node->col,
                       "type mismatch: 'not' needs a condition, found %s", da);
        return T_ERR;
    }
    case N_IN: {
        vtype_t a = check(cc, ast, node->a, uses_score);
        int h = list_handle(cc, node);
        node->idx = h;
        if (a == T_ERR || h < 0)
            return T_ERR;
        if (a == T_STR && ast->nodes[node->a].kind == N_IDENT)
            return T_BOOL;
        describe(ast, node->a, a, da, sizeof(da));
        vg_rules_error(cc->errs, node->line, node->col,
                       "type mismatch: 'in' needs a string field on its left, found %s", da);
        return T_ERR;
    }
    }
    return T_ERR;
}

/* ---- code generation ---- */

typedef struct gen {
    vg_compiler_t *cc;
    vg_ast_t *ast;
    int depth, max_depth;
} gen_t;

static size_t emit(gen_t *g, vg_op_t op, unsigned a, uint32_t b, unsigned c, int push)
{
    vg_rules_t *rs = g->cc->rules;
    if (rs->ncode == g->cc->code_cap) {
        g->cc->code_cap = g->cc->code_cap ? g->cc->code_cap * 2 : 64;
        rs->code = vg_xrealloc(rs->code, g->cc->code_cap * sizeof(*rs->code));
    }
    vg_insn_t *in = &rs->code[rs->ncode];
    in->op = (uint8_t)op;
    in->a = (uint16_t)a;
    in->b = b;
    in->c = (uint8_t)c;
    g->depth += push;
    if (g->depth > g->max_depth)
        g->max_depth = g->depth;
    return rs->ncode++;
}

static uint32_t konst(gen_t *g, double v)
{
    vg_rules_t *rs = g->cc->rules;
    for (size_t i = 0; i < rs->nkonst; i++)
        if (rs->konst[i] == v)
            return (uint32_t)i;
    if (rs->nkonst == g->cc->konst_cap) {
        g->cc->konst_cap = g->cc->konst_cap ? g->cc->konst_cap * 2 : 16;
        rs->konst = vg_xrealloc(rs->konst, g->cc->konst_cap * sizeof(*rs->konst));
    }
    rs->konst[rs->nkonst] = v;
    return (uint32_t)rs->nkonst++;
}

/* String literals are copied into the set: the syntax tree is freed after each rule. */
static uint32_t strlit(gen_t *g, const vg_node_t *node)
{
    vg_rules_t *rs = g->cc->rules;
    if (rs->nstrs == g->cc->strs_cap) {
        g->cc->strs_cap = g->cc->strs_cap ? g->cc->strs_cap * 2 : 8;
        rs->strs = vg_xrealloc(rs->strs, g->cc->strs_cap * sizeof(*rs->strs));
    }
    char *s = vg_xmalloc(node->slen + 1);
    memcpy(s, node->str, node->slen + 1);
    rs->strs[rs->nstrs].s = s;
    rs->strs[rs->nstrs].len = (uint32_t)node->slen;
    return (uint32_t)rs->nstrs++;
}

static vg_op_t cmp_op(vg_tok_t t)
{
    switch (t) {
    case TK_LT:
        return OP_LT;
    case TK_LE:
        return OP_LE;
    case TK_GT:
        return OP_GT;
    case TK_GE:
        return OP_GE;
    case TK_EQ:
        return OP_EQ;
    default:
        return OP_NE;
    }
}

static void gen(gen_t *g, int n)
{
    vg_node_t *node = &g->ast->nodes[n];
    switch (node->kind) {
    case N_NUM:
        emit(g, OP_CONST, 0, konst(g, node->num), 0, 1);
        return;
    case N_SCORE:
        emit(g, OP_SCORE, 0, 0, 0, 1);
        return;
    case N_IDENT:
        if (node->res == R_FEATURE)
            emit(g, OP_FEAT, (unsigned)node->idx, 0, 0, 1);
        else if (node->res == R_AMOUNT)
            emit(g, OP_AMOUNT, 0, 0, 0, 1);
        else if (node->res == R_LAT)
            emit(g, OP_LAT, 0, 0, 0, 1);
        else
            emit(g, OP_LON, 0, 0, 0, 1);
        return;
    case N_STR:
        return; /* only inside string comparisons, handled there */
    case N_NEG:
        if (g->ast->nodes[node->a].kind == N_NUM) {
            emit(g, OP_CONST, 0, konst(g, -g->ast->nodes[node->a].num), 0, 1);
            return;
        }
        gen(g, node->a);
        emit(g, OP_NEG, 0, 0, 0, 0);
        return;
    case N_ARITH: {
        gen(g, node->a);
        gen(g, node->b);
        vg_op_t op = node->op == TK_PLUS    ? OP_ADD
                     : node->op == TK_MINUS ? OP_SUB
                     : node->op == TK_STAR  ? OP_MUL
                                            : OP_DIV;
        emit(g, op, 0, 0, 0, -1);
        return;
    }
    case N_CMP: {
        vg_node_t *a = &g->ast->nodes[node->a], *b = &g->ast->nodes[node->b];
        int a_str = a->kind == N_STR || (a->kind == N_IDENT && a->res == R_FIELD);
        if (a_str) {
            unsigned neg = node->op == TK_NE;
            if (a->kind == N_STR && b->kind == N_STR) {
                int eq = a->slen == b->slen && memcmp(a->str, b->str, a->slen) == 0;
                emit(g, OP_CONST, 0, konst(g, eq != (int)neg), 0, 1);
            } else if (a->kind == N_IDENT && b->kind == N_IDENT) {
                emit(g, OP_STR_EQ_FIELD, (unsigned)a->idx, (uint32_t)b->idx, neg, 1);
            } else {
                const vg_node_t *field = a->kind == N_IDENT ? a : b;
                const vg_node_t *lit = a->kind == N_IDENT ? b : a;
                emit(g, OP_STR_EQ_LIT, (unsigned)field->idx, strlit(g, lit), neg, 1);
            }
            return;
        }
        /* The commonest test, `feature OP number`, is one instruction. */
        if (a->kind == N_IDENT && a->res == R_FEATURE && b->kind == N_NUM &&
            (node->op == TK_GT || node->op == TK_GE || node->op == TK_LT || node->op == TK_LE)) {
            vg_op_t op = node->op == TK_GT   ? OP_FEAT_GT_K
                         : node->op == TK_GE ? OP_FEAT_GE_K
                         : node->op == TK_LT ? OP_FEAT_LT_K
                                             : OP_FEAT_LE_K;
            emit(g, op, (unsigned)a->idx, konst(g, b->num), 0, 1);
            return;
        }
        gen(g, node->a);
        gen(g, node->b);
        emit(g, cmp_op(node->op), 0, 0, 0, -1);
        return;
    }
    case N_AND:
    case N_OR: {
        gen(g, node->a);
        size_t jump = emit(g, node->kind == N_AND ? OP_JFALSE : OP_JTRUE, 0, 0, 0, 0);
        gen(g, node->b);
        emit(g, node->kind == N_AND ? OP_AND : OP_OR, 0, 0, 0, -1);
        g->cc->rules->code[jump].b = (uint32_t)g->cc->rules->ncode;
        return;
    }
    case N_NOT:
        gen(g, node->a);
        emit(g, OP_NOT, 0, 0, 0, 0);
        return;
    case N_IN:
        emit(g, OP_IN, (unsigned)g->ast->nodes[node->a].idx, (uint32_t)node->idx,
             (unsigned)node->negate, 1);
        return;
    }
}

/* Where a diagnostic about a whole expression points: its leftmost token. */
static const vg_node_t *leftmost(const vg_ast_t *ast, int n)
{
    const vg_node_t *node = &ast->nodes[n];
    while ((node->kind == N_ARITH || node->kind == N_CMP || node->kind == N_AND ||
            node->kind == N_OR || node->kind == N_IN) &&
           node->a >= 0)
        node = &ast->nodes[node->a];
    return node;
}

int vg_compile_rule(vg_compiler_t *cc, vg_ast_t *ast, int root, int *uses_score)
{
    *uses_score = 0;
    size_t nerr = cc->errs->n + cc->errs->dropped;
    vtype_t t = check(cc, ast, root, uses_score);
    if (cc->errs->n + cc->errs->dropped != nerr)
        return -1;
    if (t != T_BOOL) {
        char d[96];
        describe(ast, root, t, d, sizeof(d));
        const vg_node_t *at = leftmost(ast, root);
        vg_rules_error(cc->errs, at->line, at->col,
                       "type mismatch: a rule needs a condition, found %s", d);
        return -1;
    }
    gen_t g = {cc, ast, 0, 0};
    size_t start = cc->rules->ncode;
    gen(&g, root);
    emit(&g, OP_END, 0, 0, 0, 0);
    if (g.max_depth > VG_RULES_STACK) {
        const vg_node_t *at = leftmost(ast, root);
        vg_rules_error(cc->errs, at->line, at->col, "condition too complex (stack depth %d > %d)",
                       g.max_depth, VG_RULES_STACK);
        cc->rules->ncode = start;
        return -1;
    }
    return 0;
}

/* ---- loading ---- */

void vg_rules_free(vg_rules_t *rules)
{
    if (!rules)
        return;
    for (size_t i = 0; i < rules->nrules; i++)
        free(rules->rules[i].id);
    free(rules->rules);
    free(rules->code);
    free(rules->konst);
    for (size_t i = 0; i < rules->nstrs; i++)
        free((char *)rules->strs[i].s);
    free(rules->strs);
    for (size_t i = 0; i < rules->nlists; i++)
        vg_list_free(&rules->lists[i]);
    free(rules->lists);
    free(rules);
}

static vg_rules_t *load(const char *name, const char *data, size_t len, const char *lists_dir,
                        const vg_rules_env_t *env, char *errbuf, size_t errlen)
{
    vg_rules_errs_t errs;
    memset(&errs, 0, sizeof(errs));
    errs.file = name;
    vg_schema_t std_schema;
    const vg_schema_t *schema = env->schema;
    if (!schema) {
        vg_schema_init(&std_schema);
        schema = &std_schema;
    }
    vg_rules_t *rs = vg_xcalloc(1, sizeof(*rs));
    rs->have_model = env->have_model;
    vg_compiler_t cc;
    memset(&cc, 0, sizeof(cc));
    cc.rules = rs;
    cc.env = env;
    cc.schema = schema;
    cc.lists_dir = lists_dir;
    cc.errs = &errs;
    if (env->nfeatures > 65535)
        vg_rules_error(&errs, 1, 1, "too many features for the rules (%zu > 65535)",
                       env->nfeatures);
    else
        vg_parse_source(&cc, data, len);
    for (size_t i = 0; i < cc.nmissing; i++)
        free(cc.missing_lists[i]);
    free(cc.missing_lists);
    if (!env->schema)
        vg_schema_free(&std_schema);
    if (errs.n > 0 || errs.dropped > 0) {
        vg_rules_errs_flush(&errs, errbuf, errlen);
        vg_rules_free(rs);
        return NULL;
    }
    vg_rules_errs_flush(&errs, errbuf, errlen);
    uint64_t h = vg_hash64(data, len, VG_HASH_SEED);
    for (size_t i = 0; i < rs->nlists; i++) {
        h = vg_hash64(rs->lists[i].name, strlen(rs->lists[i].name) + 1, h);
        h = vg_hash64(&rs->lists[i].content_hash, sizeof(uint64_t), h);
    }
    snprintf(rs->version, sizeof(rs->version), "%016llx", (unsigned long long)h);
    return rs;
}

vg_rules_t *vg_rules_load_buffer(const char *name, const char *data, size_t len,
                                 const vg_rules_env_t *env, char *errbuf, size_t errlen)
{
    return load(name, data, len, env->lists_dir ? env->lists_dir : ".", env, errbuf, errlen);
}

vg_rules_t *vg_rules_load(const char *path, const vg_rules_env_t *env, char *errbuf, size_t errlen)
{
    char *data;
    size_t len;
    char eb[VG_ERRLEN];
    if (vg_read_file(path, &data, &len, eb, sizeof(eb)) != VG_OK) {
        vg_errf(errbuf, errlen, VG_ERR_IO, "%s\n", eb);
        return NULL;
    }
    char *dir = NULL;
    if (!env->lists_dir) {
        const char *slash = strrchr(path, '/');
        if (slash) {
            size_t n = (size_t)(slash - path);
            dir = vg_xmalloc(n + 2);
            memcpy(dir, path, n ? n : 1); /* "/x.rules" lives in "/" */
            dir[n ? n : 1] = '\0';
        } else {
            dir = vg_xstrdup(".");
        }
    }
    vg_rules_t *rs =
        load(path, data, len, env->lists_dir ? env->lists_dir : dir, env, errbuf, errlen);
    free(dir);
    free(data);
    return rs;
}

/* ---- accessors ---- */

size_t vg_rules_count(const vg_rules_t *rules)
{
    return rules->nrules;
}

const char *vg_rules_id(const vg_rules_t *rules, size_t i)
{
    return rules->rules[i].id;
}

vg_action_t vg_rules_action(const vg_rules_t *rules, size_t i)
{
    return rules->rules[i].action;
}

int vg_rules_shadow(const vg_rules_t *rules, size_t i)
{
    return rules->rules[i].shadow;
}

int vg_rules_uses_score(const vg_rules_t *rules, size_t i)
{
    return rules->rules[i].uses_score;
}

int vg_rules_line(const vg_rules_t *rules, size_t i)
{
    return rules->rules[i].line;
}

const char *vg_rules_version(const vg_rules_t *rules)
{
    return rules->version;
}
