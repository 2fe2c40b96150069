/*
 * parse.c - the rule language's grammar: recursive descent over the token list, one syntax
 * tree per rule, handed to the compiler as soon as the rule is parsed.
 *
 *   file      := { line }
 *   line      := NEWLINE | rule (NEWLINE | EOF)
 *   rule      := ACTION ID ["shadow"] "if" or
 *   or        := and { "or" and }
 *   and       := not { "and" not }
 *   not       := "not" not | cmp
 *   cmp       := sum [ CMPOP sum | ["not"] "in" @LIST ]      (comparisons do not chain)
 *   sum       := product { ("+" | "-") product }
 *   product   := unary { ("*" | "/") unary }
 *   unary     := "-" unary | primary
 *   primary   := NUMBER | STRING | IDENT | "score" | "(" or ")"
 *
 * A condition continues on the next line inside parentheses or after an operator, unless
 * that line starts with an action word (then the rule really ended early, and the error
 * points at the open parenthesis or the dangling operator). After an error the parser skips
 * to the next line that starts with an action word, so one mistake gives one message.
 * Nesting (parentheses, `not`, unary minus: each level counts one) is capped at
 * VG_RULES_MAX_DEPTH and a condition's size at VG_RULES_MAX_NODES, so that no input can
 * exhaust the C stack here or in the compiler.
 */
#include "rules/rules_int.h"

#include <stdlib.h>
#include <string.h>

#define VG_RULES_MAX_DEPTH 64
#define VG_RULES_MAX_RULES 65535
/* Bounds the compiler's recursion over left-deep chains like a + a + a + ... */
#define VG_RULES_MAX_NODES 2000

typedef struct parser {
    vg_token_t *toks;
    size_t ntoks, pos;
    int paren; /* open parentheses in the current rule */
    int depth; /* recursion depth */
    int failed;
    vg_ast_t ast;
    vg_rules_errs_t *errs;
} parser_t;

static int is_action_word(const vg_token_t *t)
{
    static const char *const words[] = {"block", "review", "allow"};
    if (t->type != TK_IDENT)
        return 0;
    for (size_t i = 0; i < VG_ARRAY_LEN(words); i++)
        if (t->len == strlen(words[i]) && memcmp(t->text, words[i], t->len) == 0)
            return 1;
    return 0;
}

static int tok_is(const vg_token_t *t, const char *word)
{
    return t->type == TK_IDENT && t->len == strlen(word) && memcmp(t->text, word, t->len) == 0;
}

static vg_token_t *cur(parser_t *p)
{
    return &p->toks[p->pos];
}

static void advance(parser_t *p)
{
    if (p->toks[p->pos].type != TK_EOF)
        p->pos++;
}

/* Steps over newlines when the expression goes on: the next non-newline token is not the
 * start of another rule. */
static void skip_continuation(parser_t *p)
{
    size_t q = p->pos;
    while (p->toks[q].type == TK_NEWLINE)
        q++;
    if (q != p->pos && p->toks[q].type != TK_EOF && !is_action_word(&p->toks[q]))
        p->pos = q;
}

static void fail(parser_t *p, const vg_token_t *at, const char *fmt, const char *arg)
{
    if (p->failed)
        return;
    p->failed = 1;
    if (at->type == TK_ERROR)
        return; /* the lexer has said what is wrong here */
    char msg[256];
    snprintf(msg, sizeof(msg), fmt, arg);
    vg_rules_error(p->errs, at->line, at->col, "%s", msg);
}

static void fail_found(parser_t *p, const vg_token_t *at, const char *expected)
{
    char found[80], msg[224];
    vg_tok_describe(at, found, sizeof(found));
    snprintf(msg, sizeof(msg), "expected %s, found %s", expected, found);
    fail(p, at, "%s", msg);
}

static int new_node(parser_t *p, vg_node_kind_t kind, const vg_token_t *at)
{
    vg_ast_t *ast = &p->ast;
    if (ast->n == ast->cap) {
        ast->cap = ast->cap ? ast->cap * 2 : 32;
        ast->nodes = vg_xrealloc(ast->nodes, ast->cap * sizeof(*ast->nodes));
    }
    vg_node_t *n = &ast->nodes[ast->n];
    memset(n, 0, sizeof(*n));
    n->kind = kind;
    n->line = at->line;
    n->col = at->col;
    n->a = n->b = -1;
    return (int)ast->n++;
}

void vg_ast_reset(vg_ast_t *ast)
{
    for (size_t i = 0; i < ast->n; i++)
        free(ast->nodes[i].str);
    ast->n = 0;
}

void vg_ast_free(vg_ast_t *ast)
{
    vg_ast_reset(ast);
    free(ast->nodes);
    ast->nodes = NULL;
    ast->cap = 0;
}

/* The value of a string literal: \" \\ \n \t are escapes, any other \x stands for x. */
static char *unescape(const char *s, size_t len, size_t *outlen)
{
    char *out = vg_xmalloc(len + 1);
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (c == '\\' && i + 1 < len) {
            c = s[++i];
            if (c == 'n')
                c = '\n';
            else if (c == 't')
                c = '\t';
        }
        out[n++] = c;
    }
    out[n] = '\0';
    *outlen = n;
    return out;
}

static int parse_or(parser_t *p);

static int parse_primary(parser_t *p)
{
    skip_continuation(p);
    vg_token_t *t = cur(p);
    int n;
    switch (t->type) {
    case TK_NUMBER:
        n = new_node(p, N_NUM, t);
        p->ast.nodes[n].num = t->num;
        advance(p);
        return n;
    case TK_STRING:
        n = new_node(p, N_STR, t);
        p->ast.nodes[n].str = unescape(t->text, t->len, &p->ast.nodes[n].slen);
        advance(p);
        return n;
    case TK_IDENT:
        if (is_action_word(t)) {
            fail_found(p, t, "a value");
            return -1;
        }
        if (tok_is(t, "score")) {
            n = new_node(p, N_SCORE, t);
        } else {
            n = new_node(p, N_IDENT, t);
            p->ast.nodes[n].str = vg_xmalloc(t->len + 1);
            memcpy(p->ast.nodes[n].str, t->text, t->len);
            p->ast.nodes[n].str[t->len] = '\0';
            p->ast.nodes[n].slen = t->len;
        }
        advance(p);
        return n;
    case TK_LPAREN: {
        vg_token_t *open = t;
        if (++p->depth > VG_RULES_MAX_DEPTH) {
            fail(p, t, "condition nested too deeply (more than %s levels)", "64");
            return -1;
        }
        advance(p);
        p->paren++;
        n = parse_or(p);
        p->depth--;
        if (n < 0)
            return -1;
        skip_continuation(p);
        if (cur(p)->type == TK_RPAREN) {
            p->paren--;
            advance(p);
            return n;
        }
        if (cur(p)->type == TK_NEWLINE || cur(p)->type == TK_EOF)
            fail(p, open, "%s", "unbalanced parentheses: this '(' is never closed");
        else
            fail_found(p, cur(p), "')' or an operator");
        return -1;
    }
    case TK_RPAREN:
        fail(p, t, "%s", "expected a value before ')'");
        return -1;
    default:
        fail_found(p, t, "a value");
        return -1;
    }
}

static int parse_unary(parser_t *p)
{
    skip_continuation(p);
    if (cur(p)->type != TK_MINUS)
        return parse_primary(p);
    vg_token_t *t = cur(p);
    advance(p);
    if (++p->depth > VG_RULES_MAX_DEPTH) {
        fail(p, t, "condition nested too deeply (more than %s levels)", "64");
        return -1;
    }
    int a = parse_unary(p);
    p->depth--;
    if (a < 0)
        return -1;
    int n = new_node(p, N_NEG, t);
    p->ast.nodes[n].a = a;
    return n;
}

/* In parentheses, an operator may start the next line. */
static vg_token_t *peek_operator(parser_t *p)
{
    if (p->paren > 0)
        skip_continuation(p);
    return cur(p);
}

static int binary(parser_t *p, vg_node_kind_t kind, vg_token_t *op, int a, int b)
{
    if (p->ast.n > VG_RULES_MAX_NODES) {
        fail(p, op, "condition too long (more than %s terms)", "1000");
        return -1;
    }
    int n = new_node(p, kind, op);
    p->ast.nodes[n].op = op->type;
    p->ast.nodes[n].a = a;
    p->ast.nodes[n].b = b;
    return n;
}

static int parse_product(parser_t *p)
{
    int a = parse_unary(p);
    while (a >= 0) {
        vg_token_t *op = peek_operator(p);
        if (op->type != TK_STAR && op->type != TK_SLASH)
            break;
        advance(p);
        int b = parse_unary(p);
        if (b < 0)
            return -1;
        a = binary(p, N_ARITH, op, a, b);
    }
    return a;
}

static int parse_sum(parser_t *p)
{
    int a = parse_product(p);
    while (a >= 0) {
        vg_token_t *op = peek_operator(p);
        if (op->type != TK_PLUS && op->type != TK_MINUS)
            break;
        advance(p);
        int b = parse_product(p);
        if (b < 0)
            return -1;
        a = binary(p, N_ARITH, op, a, b);
    }
    return a;
}

static int is_cmp(vg_tok_t t)
{
    return t == TK_LT || t == TK_LE || t == TK_GT || t == TK_GE || t == TK_EQ || t == TK_NE;
}

static int parse_cmp(parser_t *p)
{
    int a = parse_sum(p);
    if (a < 0)
        return -1;
    vg_token_t *op = peek_operator(p);
    if (is_cmp(op->type)) {
        advance(p);
        int b = parse_sum(p);
        if (b < 0)
            return -1;
        int n = binary(p, N_CMP, op, a, b);
        if (n < 0)
            return -1;
        vg_token_t *next = peek_operator(p);
        if (is_cmp(next->type)) {
            fail(p, next, "%s", "comparisons do not chain: write 'a < b and b < c'");
            return -1;
        }
        return n;
    }
    int negate = 0;
    if (op->type == TK_NOT && p->toks[p->pos + 1].type == TK_IN) {
        negate = 1;
        advance(p);
    }
    if (cur(p)->type != TK_IN)
        return a;
    advance(p);
    skip_continuation(p);
    vg_token_t *lt = cur(p);
    if (lt->type != TK_LIST) {
        fail_found(p, lt, "a list (@name) after 'in'");
        return -1;
    }
    int n = new_node(p, N_IN, op);
    vg_node_t *node = &p->ast.nodes[n];
    node->a = a;
    node->negate = negate;
    node->str = vg_xmalloc(lt->len + 1);
    memcpy(node->str, lt->text, lt->len);
    node->str[lt->len] = '\0';
    node->slen = lt->len;
    node->line = lt->line; /* a missing list is reported at its name */
    node->col = lt->col;
    advance(p);
    return n;
}

static int parse_not(parser_t *p)
{
    skip_continuation(p);
    if (cur(p)->type != TK_NOT)
        return parse_cmp(p);
    vg_token_t *t = cur(p);
    advance(p);
    if (++p->depth > VG_RULES_MAX_DEPTH) {
        fail(p, t, "condition nested too deeply (more than %s levels)", "64");
        return -1;
    }
    int a = parse_not(p);
    p->depth--;
    if (a < 0)
        return -1;
    int n = new_node(p, N_NOT, t);
    p->ast.nodes[n].a = a;
    return n;
}

static int parse_and(parser_t *p)
{
    int a = parse_not(p);
    while (a >= 0) {
        vg_token_t *op = peek_operator(p);
        if (op->type != TK_AND)
            break;
        advance(p);
        int b = parse_not(p);
        if (b < 0)
            return -1;
        a = binary(p, N_AND, op, a, b);
    }
    return a;
}

static int parse_or(parser_t *p)
{
    int a = parse_and(p);
    while (a >= 0) {
        vg_token_t *op = peek_operator(p);
        if (op->type != TK_OR)
            break;
        advance(p);
        int b = parse_and(p);
        if (b < 0)
            return -1;
        a = binary(p, N_OR, op, a, b);
    }
    return a;
}

typedef struct seen_id {
    char *id;
    int line;
} seen_id_t;

/* One rule from the current token; returns 0, or -1 after reporting. */
static int parse_rule(parser_t *p, vg_compiler_t *cc, seen_id_t **seen, size_t *nseen,
                      size_t *seencap)
{
    vg_token_t *t = cur(p);
    if (t->type != TK_IDENT) {
        fail_found(p, t, "an action (block, review or allow)");
        return -1;
    }
    vg_action_t action;
    if (tok_is(t, "block")) {
        action = VG_ACTION_BLOCK;
    } else if (tok_is(t, "review")) {
        action = VG_ACTION_REVIEW;
    } else if (tok_is(t, "allow")) {
        action = VG_ACTION_ALLOW;
    } else {
        char word[48];
        snprintf(word, sizeof(word), "%.*s", (int)(t->len > 40 ? 40 : t->len), t->text);
        fail(p, t, "unknown action '%s' (expected block, review or allow)", word);
        return -1;
    }
    const char *action_word = action == VG_ACTION_BLOCK    ? "a rule id after 'block'"
                              : action == VG_ACTION_REVIEW ? "a rule id after 'review'"
                                                           : "a rule id after 'allow'";
    advance(p);
    vg_token_t *idt = cur(p);
    if (idt->type != TK_IDENT || is_action_word(idt)) {
        fail_found(p, idt, action_word);
        return -1;
    }
    char id[72];
    snprintf(id, sizeof(id), "%.*s", (int)(idt->len > 64 ? 64 : idt->len), idt->text);
    if (idt->len > 64) {
        fail(p, idt, "rule id '%s...' is longer than 64 characters", id);
        return -1;
    }
    advance(p);
    int shadow = 0;
    if (tok_is(cur(p), "shadow")) {
        shadow = 1;
        advance(p);
    }
    if (cur(p)->type != TK_IF) {
        char what[96];
        snprintf(what, sizeof(what), "'if' after rule id '%s'", id);
        fail_found(p, cur(p), what);
        return -1;
    }
    advance(p);
    for (size_t i = 0; i < *nseen; i++) {
        if (strcmp((*seen)[i].id, id) == 0) {
            char msg[160];
            snprintf(msg, sizeof(msg), "duplicate rule id '%s' (first defined at line %d)", id,
                     (*seen)[i].line);
            fail(p, idt, "%s", msg);
            return -1;
        }
    }
    if (*nseen == *seencap) {
        *seencap = *seencap ? *seencap * 2 : 16;
        *seen = vg_xrealloc(*seen, *seencap * sizeof(**seen));
    }
    (*seen)[*nseen].id = vg_xstrdup(id);
    (*seen)[(*nseen)++].line = idt->line;

    skip_continuation(p);
    if (cur(p)->type == TK_NEWLINE || cur(p)->type == TK_EOF) {
        fail_found(p, cur(p), "a condition after 'if'");
        return -1;
    }
    vg_ast_reset(&p->ast);
    p->paren = 0;
    p->depth = 0;
    int root = parse_or(p);
    if (root < 0)
        return -1;
    vg_token_t *end = cur(p);
    if (end->type == TK_RPAREN) {
        fail(p, end, "%s", "unbalanced parentheses: this ')' has no matching '('");
        return -1;
    }
    if (end->type != TK_NEWLINE && end->type != TK_EOF) {
        fail_found(p, end, "an operator or the end of the rule");
        return -1;
    }
    if (cc->rules->nrules >= VG_RULES_MAX_RULES) {
        fail(p, idt, "too many rules (at most %s)", "65535");
        return -1;
    }
    int uses_score = 0;
    uint32_t start = (uint32_t)cc->rules->ncode;
    if (vg_compile_rule(cc, &p->ast, root, &uses_score) != 0)
        return -2; /* reported; the rule parsed, so no need to resynchronise */
    vg_rules_t *rs = cc->rules;
    rs->rules = vg_xrealloc(rs->rules, (rs->nrules + 1) * sizeof(*rs->rules));
    vg_rule_t *r = &rs->rules[rs->nrules++];
    r->id = vg_xstrdup(id);
    r->action = action;
    r->shadow = shadow;
    r->uses_score = uses_score;
    r->line = t->line;
    r->code = start;
    if (uses_score)
        rs->any_score = 1;
    return 0;
}

int vg_parse_source(vg_compiler_t *cc, const char *src, size_t len)
{
    vg_lexer_t lx;
    vg_lex_init(&lx, src, len, cc->errs);
    parser_t p;
    memset(&p, 0, sizeof(p));
    p.errs = cc->errs;
    size_t cap = 256;
    p.toks = vg_xmalloc(cap * sizeof(*p.toks));
    for (;;) {
        if (p.ntoks + 2 >= cap) {
            cap *= 2;
            p.toks = vg_xrealloc(p.toks, cap * sizeof(*p.toks));
        }
        p.toks[p.ntoks] = vg_lex_next(&lx);
        if (p.toks[p.ntoks++].type == TK_EOF)
            break;
    }
    /* An extra EOF so that one token of lookahead past the end is always valid. */
    p.toks[p.ntoks] = p.toks[p.ntoks - 1];

    seen_id_t *seen = NULL;
    size_t nseen = 0, seencap = 0;
    int errors = 0;
    while (cur(&p)->type != TK_EOF) {
        if (cur(&p)->type == TK_NEWLINE) {
            advance(&p);
            continue;
        }
        p.failed = 0;
        int rc = parse_rule(&p, cc, &seen, &nseen, &seencap);
        if (rc == 0)
            continue;
        errors++;
        if (rc == -2)
            continue;
        /* Resume at the next line that starts with an action word. */
        for (;;) {
            while (cur(&p)->type != TK_NEWLINE && cur(&p)->type != TK_EOF)
                advance(&p);
            if (cur(&p)->type == TK_EOF)
                break;
            advance(&p);
            if (is_action_word(cur(&p)) || cur(&p)->type == TK_EOF)
                break;
        }
    }
    for (size_t i = 0; i < nseen; i++)
        free(seen[i].id);
    free(seen);
    vg_ast_free(&p.ast);
    free(p.toks);
    return errors;
}
