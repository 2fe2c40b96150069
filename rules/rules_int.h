/*
 * rules_int.h - what the parts of the rules module share and nobody else sees: tokens,
 * the syntax tree, the compiled program, the list sets and the error collector.
 *
 * Pipeline: lex.c turns bytes into tokens; parse.c builds one syntax tree per rule
 * (recursive descent, every error collected with its position); compile.c resolves names,
 * checks types and emits stack-machine code; eval.c runs it; lists.c holds the @list sets.
 */
#ifndef VG_RULES_INT_H
#define VG_RULES_INT_H

#include "rules/rules.h"

#include <stdint.h>

/* ---- errors: "FILE:LINE:COL: message" lines collected in order ---- */

#define VG_RULES_MAX_ERRORS 50

typedef struct vg_rules_errmsg {
    int line, col;
    char *msg;
} vg_rules_errmsg_t;

/* Errors are kept until the end of the load and then written sorted by position, so the
 * lexer, the parser and the compiler may find them in any order. */
typedef struct vg_rules_errs {
    const char *file;
    vg_rules_errmsg_t *v;
    size_t n, cap;
    size_t dropped; /* beyond VG_RULES_MAX_ERRORS */
} vg_rules_errs_t;

void vg_rules_error(vg_rules_errs_t *errs, int line, int col, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Writes the errors, in file order, one per line into buf (whole lines only); frees them. */
void vg_rules_errs_flush(vg_rules_errs_t *errs, char *buf, size_t cap);

/* ---- tokens ---- */

typedef enum vg_tok {
    TK_EOF = 0,
    TK_NEWLINE,
    TK_IDENT,
    TK_NUMBER,
    TK_STRING,
    TK_LIST, /* @name: text is the name without '@' */
    TK_LPAREN,
    TK_RPAREN,
    TK_PLUS,
    TK_MINUS,
    TK_STAR,
    TK_SLASH,
    TK_LT,
    TK_LE,
    TK_GT,
    TK_GE,
    TK_EQ, /* == or = */
    TK_NE,
    TK_AND, /* keywords */
    TK_OR,
    TK_NOT,
    TK_IN,
    TK_IF,
    TK_ERROR, /* the lexer already reported it */
} vg_tok_t;

typedef struct vg_token {
    vg_tok_t type;
    int line, col;
    const char *text; /* into the source; for TK_STRING the raw text between the quotes */
    size_t len;
    double num; /* TK_NUMBER */
} vg_token_t;

typedef struct vg_lexer {
    const char *src, *end, *p;
    int line;
    const char *line_start;
    vg_rules_errs_t *errs;
} vg_lexer_t;

void vg_lex_init(vg_lexer_t *lx, const char *src, size_t len, vg_rules_errs_t *errs);
/* The next token; errors (bad character, unterminated string) are reported and returned
 * as TK_ERROR so the parser can skip the line. */
vg_token_t vg_lex_next(vg_lexer_t *lx);
/* "end of line", "identifier card_id", "'<='", ... for "found X" messages. */
void vg_tok_describe(const vg_token_t *t, char *out, size_t outlen);

/* ---- syntax tree ---- */

typedef enum vg_node_kind {
    N_NUM,   /* num */
    N_STR,   /* str (unescaped copy), slen */
    N_IDENT, /* name */
    N_SCORE,
    N_NEG,   /* a */
    N_ARITH, /* op in {TK_PLUS,...}, a, b */
    N_CMP,   /* op in {TK_LT,...}, a, b */
    N_AND,
    N_OR,
    N_NOT,
    N_IN, /* a = operand, list = name, negate */
} vg_node_kind_t;

typedef struct vg_node {
    vg_node_kind_t kind;
    int line, col;
    vg_tok_t op;
    int a, b; /* child node indices */
    double num;
    char *str; /* N_STR value, N_IDENT / N_IN names: malloc'd */
    size_t slen;
    int negate;
    int res, idx; /* set by the compiler: what an identifier resolved to, and its index */
} vg_node_t;

typedef struct vg_ast {
    vg_node_t *nodes;
    size_t n, cap;
} vg_ast_t;

void vg_ast_reset(vg_ast_t *ast);
void vg_ast_free(vg_ast_t *ast);

/* ---- lists ---- */

typedef struct vg_list {
    char *name;
    uint64_t *hashes; /* open addressing, 0 = empty slot; stored hash is never 0 */
    uint32_t *offs;   /* value offset in data for each slot */
    uint32_t *lens;
    size_t mask; /* slots - 1 */
    char *data;  /* the file's bytes, values NUL-terminated in place */
    size_t nvalues;
    uint64_t content_hash;
} vg_list_t;

/* Loads lists_dir/name.txt; VG_ERR_IO with "PATH: reason" in errbuf. */
vg_err_t vg_list_load(vg_list_t *list, const char *dir, const char *name, char *errbuf,
                      size_t errlen);
void vg_list_free(vg_list_t *list);
int vg_list_contains(const vg_list_t *list, const char *s, size_t len);

/* ---- compiled program ---- */

typedef enum vg_op {
    OP_END = 0,
    OP_CONST,  /* push konst[b] */
    OP_FEAT,   /* push features[a] */
    OP_AMOUNT, /* push txn->amount */
    OP_LAT,    /* push txn->lat */
    OP_LON,    /* push txn->lon */
    OP_SCORE,  /* push score */
    OP_NEG,
    OP_ADD,
    OP_SUB,
    OP_MUL,
    OP_DIV, /* x / 0 is missing */
    OP_LT,
    OP_LE,
    OP_GT,
    OP_GE,
    OP_EQ,
    OP_NE,
    OP_FEAT_GT_K, /* fused: push features[a] > konst[b], the commonest test */
    OP_FEAT_GE_K,
    OP_FEAT_LT_K,
    OP_FEAT_LE_K,
    OP_STR_EQ_LIT,   /* push field a == strs[b] (negate: c) */
    OP_STR_EQ_FIELD, /* push field a == field b (negate: c) */
    OP_IN,           /* push field a in lists[b] (negate: c) */
    OP_NOT,
    OP_AND,
    OP_OR,
    OP_JFALSE, /* if top is false, jump to b (keep top) */
    OP_JTRUE,  /* if top is true, jump to b (keep top) */
} vg_op_t;

typedef struct vg_insn {
    uint8_t op;
    uint8_t c;
    uint16_t a;
    uint32_t b;
} vg_insn_t;

/* Deepest stack a program may need; deeper conditions are a load error. */
#define VG_RULES_STACK 128

typedef struct vg_rule {
    char *id;
    vg_action_t action;
    int shadow;
    int uses_score;
    int line;
    uint32_t code; /* first instruction */
} vg_rule_t;

typedef struct vg_strlit {
    const char *s;
    uint32_t len;
} vg_strlit_t;

struct vg_rules {
    vg_rule_t *rules;
    size_t nrules;
    vg_insn_t *code;
    size_t ncode;
    double *konst;
    size_t nkonst;
    vg_strlit_t *strs;
    size_t nstrs;
    vg_list_t *lists;
    size_t nlists;
    int have_model;
    int any_score; /* some rule uses score */
    char version[17];
};

/* ---- compile: one rule at a time, into the set being built ---- */

typedef struct vg_compiler {
    vg_rules_t *rules;
    const vg_rules_env_t *env;
    const vg_schema_t *schema;
    const char *lists_dir;
    vg_rules_errs_t *errs;
    size_t code_cap, konst_cap, strs_cap, lists_cap;
    char **missing_lists; /* lists already reported missing, not reported again */
    size_t nmissing;
} vg_compiler_t;

/* Type-checks ast (root node) and appends its code to the set; returns 0 or -1 (reported).
 * Sets *uses_score. */
int vg_compile_rule(vg_compiler_t *cc, vg_ast_t *ast, int root, int *uses_score);

/* Parses and compiles the whole source into cc->rules; returns the number of errors. */
int vg_parse_source(vg_compiler_t *cc, const char *src, size_t len);

#endif
