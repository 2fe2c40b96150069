/*
 * lex.c - the rule language's tokens.
 *
 * The source is bytes, not a C string: it may hold NULs and need not be terminated, so the
 * lexer never reads past `end`. Every token carries its 1-based line and byte column.
 * Newlines are tokens (a rule ends at the end of its line); whether a newline continues an
 * expression is the parser's call. A bad character or an unterminated string is reported
 * here once, and comes back as TK_ERROR so that the parser skips the rest of the line.
 */
#include "rules/rules_int.h"

#include <ctype.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

void vg_lex_init(vg_lexer_t *lx, const char *src, size_t len, vg_rules_errs_t *errs)
{
    lx->src = src;
    lx->p = src;
    lx->end = src + len;
    lx->line = 1;
    lx->line_start = src;
    lx->errs = errs;
}

static int is_ident_start(int c)
{
    return isalpha(c) || c == '_';
}

static int is_ident_char(int c)
{
    return isalnum(c) || c == '_';
}

static vg_token_t make(vg_lexer_t *lx, vg_tok_t type, const char *start, size_t len)
{
    vg_token_t t;
    memset(&t, 0, sizeof(t));
    t.type = type;
    t.line = lx->line;
    t.col = (int)(start - lx->line_start) + 1;
    t.text = start;
    t.len = len;
    return t;
}

static const struct {
    const char *word;
    vg_tok_t type;
} keywords[] = {
    {"and", TK_AND}, {"or", TK_OR}, {"not", TK_NOT}, {"in", TK_IN}, {"if", TK_IF},
};

static vg_token_t lex_number(vg_lexer_t *lx)
{
    const char *start = lx->p, *q = lx->p;
    while (q < lx->end && isdigit((unsigned char)*q))
        q++;
    if (q < lx->end && *q == '.') {
        q++;
        while (q < lx->end && isdigit((unsigned char)*q))
            q++;
    }
    if (q < lx->end && (*q == 'e' || *q == 'E')) {
        const char *e = q + 1;
        if (e < lx->end && (*e == '+' || *e == '-'))
            e++;
        if (e < lx->end && isdigit((unsigned char)*e)) {
            while (e < lx->end && isdigit((unsigned char)*e))
                e++;
            q = e;
        }
    }
    int bad = 0;
    while (q < lx->end && (is_ident_char((unsigned char)*q) || *q == '.')) {
        bad = 1;
        q++;
    }
    lx->p = q;
    vg_token_t t = make(lx, TK_NUMBER, start, (size_t)(q - start));
    char tmp[64];
    if (!bad && t.len < sizeof(tmp)) {
        memcpy(tmp, start, t.len);
        tmp[t.len] = '\0';
        t.num = strtod(tmp, NULL);
        if (!isfinite(t.num)) {
            vg_rules_error(lx->errs, t.line, t.col, "number out of range: %s", tmp);
            t.type = TK_ERROR;
        }
        return t;
    }
    vg_rules_error(lx->errs, t.line, t.col, "malformed number '%.*s'",
                   (int)(t.len > 40 ? 40 : t.len), start);
    t.type = TK_ERROR;
    return t;
}

vg_token_t vg_lex_next(vg_lexer_t *lx)
{
    while (lx->p < lx->end && (*lx->p == ' ' || *lx->p == '\t' || *lx->p == '\r'))
        lx->p++;
    if (lx->p < lx->end && *lx->p == '#') /* a comment runs to the end of its line */
        while (lx->p < lx->end && *lx->p != '\n')
            lx->p++;
    if (lx->p >= lx->end)
        return make(lx, TK_EOF, lx->p, 0);
    const char *start = lx->p;
    unsigned char c = (unsigned char)*lx->p;
    if (c == '\n') {
        vg_token_t t = make(lx, TK_NEWLINE, start, 1);
        lx->p++;
        lx->line++;
        lx->line_start = lx->p;
        return t;
    }
    if (is_ident_start(c)) {
        while (lx->p < lx->end && is_ident_char((unsigned char)*lx->p))
            lx->p++;
        vg_token_t t = make(lx, TK_IDENT, start, (size_t)(lx->p - start));
        for (size_t i = 0; i < VG_ARRAY_LEN(keywords); i++)
            if (strlen(keywords[i].word) == t.len && memcmp(keywords[i].word, start, t.len) == 0)
                t.type = keywords[i].type;
        return t;
    }
    if (isdigit(c) || (c == '.' && lx->p + 1 < lx->end && isdigit((unsigned char)lx->p[1])))
        return lex_number(lx);
    if (c == '"') {
        const char *q = lx->p + 1;
        while (q < lx->end && *q != '"' && *q != '\n') {
            if (*q == '\\' && q + 1 < lx->end && q[1] != '\n')
                q++;
            q++;
        }
        if (q >= lx->end || *q != '"') {
            vg_token_t t = make(lx, TK_ERROR, start, (size_t)(q - start));
            vg_rules_error(lx->errs, t.line, t.col, "unterminated string");
            lx->p = q;
            return t;
        }
        vg_token_t t = make(lx, TK_STRING, start + 1, (size_t)(q - start - 1));
        t.col--; /* the token starts at the quote */
        lx->p = q + 1;
        return t;
    }
    if (c == '@') {
        const char *q = lx->p + 1;
        while (q < lx->end && (is_ident_char((unsigned char)*q) || *q == '-'))
            q++;
        vg_token_t t = make(lx, TK_LIST, start + 1, (size_t)(q - start - 1));
        t.col--;
        lx->p = q;
        if (t.len == 0) {
            t.type = TK_ERROR;
            vg_rules_error(lx->errs, t.line, t.col, "expected a list name after '@'");
        }
        return t;
    }
    char next = lx->p + 1 < lx->end ? lx->p[1] : '\0';
    vg_tok_t type = TK_ERROR;
    size_t len = 1;
    switch (c) {
    case '(':
        type = TK_LPAREN;
        break;
    case ')':
        type = TK_RPAREN;
        break;
    case '+':
        type = TK_PLUS;
        break;
    case '-':
        type = TK_MINUS;
        break;
    case '*':
        type = TK_STAR;
        break;
    case '/':
        type = TK_SLASH;
        break;
    case '<':
        type = next == '=' ? TK_LE : TK_LT;
        len = next == '=' ? 2 : 1;
        break;
    case '>':
        type = next == '=' ? TK_GE : TK_GT;
        len = next == '=' ? 2 : 1;
        break;
    case '=':
        type = TK_EQ;
        len = next == '=' ? 2 : 1;
        break;
    case '!':
        if (next == '=') {
            type = TK_NE;
            len = 2;
        }
        break;
    default:
        break;
    }
    vg_token_t t = make(lx, type, start, len);
    lx->p += len;
    if (type == TK_ERROR) {
        if (c == '!')
            vg_rules_error(lx->errs, t.line, t.col, "unexpected character '!' (use 'not' or '!=')");
        else if (isprint(c))
            vg_rules_error(lx->errs, t.line, t.col, "unexpected character '%c'", c);
        else
            vg_rules_error(lx->errs, t.line, t.col, "unexpected byte 0x%02x", c);
    }
    return t;
}

void vg_tok_describe(const vg_token_t *t, char *out, size_t outlen)
{
    int n = (int)(t->len > 40 ? 40 : t->len);
    switch (t->type) {
    case TK_EOF:
        snprintf(out, outlen, "end of file");
        break;
    case TK_NEWLINE:
        snprintf(out, outlen, "end of line");
        break;
    case TK_IDENT:
        snprintf(out, outlen, "'%.*s'", n, t->text);
        break;
    case TK_NUMBER:
        snprintf(out, outlen, "number %.*s", n, t->text);
        break;
    case TK_STRING:
        snprintf(out, outlen, "string \"%.*s\"", n, t->text);
        break;
    case TK_LIST:
        snprintf(out, outlen, "list @%.*s", n, t->text);
        break;
    default:
        snprintf(out, outlen, "'%.*s'", n, t->text);
        break;
    }
}
