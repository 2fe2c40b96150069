/*
 * eval.c - running compiled rules against one transaction.
 *
 * The machine is a stack of doubles. A condition's value is three-valued and rides on the
 * same stack: 1.0 true, 0.0 false, NaN unknown (a missing value was involved). Numeric
 * operations propagate NaN; comparisons with NaN give unknown; and/or/not follow Kleene
 * logic (false and unknown = false, true or unknown = true, not unknown = unknown). A rule
 * fires only when its condition is true. The compiler guarantees that every program ends
 * in OP_END, is well-typed and needs at most VG_RULES_STACK slots, so nothing here checks.
 */
#include "rules/rules_int.h"

#include <math.h>
#include <string.h>

const char *vg_action_name(vg_action_t a)
{
    switch (a) {
    case VG_ACTION_ALLOW:
        return "allow";
    case VG_ACTION_REVIEW:
        return "review";
    case VG_ACTION_BLOCK:
        return "block";
    }
    return "?";
}

static inline double cmp_result(double a, double b, int r)
{
    return isnan(a) || isnan(b) ? NAN : (double)r;
}

/* Runs one program; returns non-zero when the condition is true. */
static int run(const vg_rules_t *rs, const vg_insn_t *pc, const vg_txn_t *txn,
               const double *features, double score)
{
    double stack[VG_RULES_STACK];
    double *sp = stack; /* next free slot */
    for (;;) {
        const vg_insn_t in = *pc++;
        switch ((vg_op_t)in.op) {
        case OP_END:
            return sp[-1] == 1.0;
        case OP_CONST:
            *sp++ = rs->konst[in.b];
            break;
        case OP_FEAT:
            *sp++ = features[in.a];
            break;
        case OP_AMOUNT:
            *sp++ = txn->amount;
            break;
        case OP_LAT:
            *sp++ = txn->lat;
            break;
        case OP_LON:
            *sp++ = txn->lon;
            break;
        case OP_SCORE:
            *sp++ = score;
            break;
        case OP_NEG:
            sp[-1] = -sp[-1];
            break;
        case OP_ADD:
            sp--;
            sp[-1] += sp[0];
            break;
        case OP_SUB:
            sp--;
            sp[-1] -= sp[0];
            break;
        case OP_MUL:
            sp--;
            sp[-1] *= sp[0];
            break;
        case OP_DIV:
            sp--;
            sp[-1] = sp[0] == 0.0 ? NAN : sp[-1] / sp[0];
            break;
        case OP_LT:
            sp--;
            sp[-1] = cmp_result(sp[-1], sp[0], sp[-1] < sp[0]);
            break;
        case OP_LE:
            sp--;
            sp[-1] = cmp_result(sp[-1], sp[0], sp[-1] <= sp[0]);
            break;
        case OP_GT:
            sp--;
            sp[-1] = cmp_result(sp[-1], sp[0], sp[-1] > sp[0]);
            break;
        case OP_GE:
            sp--;
            sp[-1] = cmp_result(sp[-1], sp[0], sp[-1] >= sp[0]);
            break;
        case OP_EQ:
            sp--;
            sp[-1] = cmp_result(sp[-1], sp[0], sp[-1] == sp[0]);
            break;
        case OP_NE:
            sp--;
            sp[-1] = cmp_result(sp[-1], sp[0], sp[-1] != sp[0]);
            break;
        case OP_FEAT_GT_K: {
            double v = features[in.a];
            *sp++ = isnan(v) ? NAN : (double)(v > rs->konst[in.b]);
            break;
        }
        case OP_FEAT_GE_K: {
            double v = features[in.a];
            *sp++ = isnan(v) ? NAN : (double)(v >= rs->konst[in.b]);
            break;
        }
        case OP_FEAT_LT_K: {
            double v = features[in.a];
            *sp++ = isnan(v) ? NAN : (double)(v < rs->konst[in.b]);
            break;
        }
        case OP_FEAT_LE_K: {
            double v = features[in.a];
            *sp++ = isnan(v) ? NAN : (double)(v <= rs->konst[in.b]);
            break;
        }
        case OP_STR_EQ_LIT: {
            const char *s = txn->str[in.a];
            const vg_strlit_t *lit = &rs->strs[in.b];
            if (!s)
                *sp++ = NAN;
            else
                *sp++ = (double)((txn->len[in.a] == lit->len && memcmp(s, lit->s, lit->len) == 0) !=
                                 in.c);
            break;
        }
        case OP_STR_EQ_FIELD: {
            const char *s = txn->str[in.a], *t = txn->str[in.b];
            if (!s || !t)
                *sp++ = NAN;
            else
                *sp++ = (double)((txn->len[in.a] == txn->len[in.b] &&
                                  memcmp(s, t, txn->len[in.a]) == 0) != in.c);
            break;
        }
        case OP_IN: {
            const char *s = txn->str[in.a];
            if (!s)
                *sp++ = NAN;
            else
                *sp++ = (double)(vg_list_contains(&rs->lists[in.b], s, txn->len[in.a]) != in.c);
            break;
        }
        case OP_NOT:
            if (!isnan(sp[-1]))
                sp[-1] = 1.0 - sp[-1];
            break;
        case OP_AND: {
            sp--;
            double a = sp[-1], b = sp[0];
            sp[-1] = (a == 0.0 || b == 0.0) ? 0.0 : (isnan(a) || isnan(b)) ? NAN : 1.0;
            break;
        }
        case OP_OR: {
            sp--;
            double a = sp[-1], b = sp[0];
            sp[-1] = (a == 1.0 || b == 1.0) ? 1.0 : (isnan(a) || isnan(b)) ? NAN : 0.0;
            break;
        }
        case OP_JFALSE:
            if (sp[-1] == 0.0)
                pc = rs->code + in.b;
            break;
        case OP_JTRUE:
            if (sp[-1] == 1.0)
                pc = rs->code + in.b;
            break;
        }
    }
}

/* Adds rule i to the fired list, keeping it sorted and bounded. */
static void add_fired(vg_rules_result_t *res, uint16_t i)
{
    size_t pos = res->nfired;
    while (pos > 0 && res->fired[pos - 1] > i)
        pos--;
    if (res->nfired == VG_RULES_MAX_FIRED) {
        res->truncated = 1;
        if (pos == VG_RULES_MAX_FIRED)
            return;
        res->nfired--; /* drop the highest index to make room */
    }
    memmove(&res->fired[pos + 1], &res->fired[pos], (res->nfired - pos) * sizeof(res->fired[0]));
    res->fired[pos] = i;
    res->nfired++;
}

void vg_rules_eval(const vg_rules_t *rules, vg_rules_stage_t stage, const vg_txn_t *txn,
                   const double *features, double score, vg_rules_result_t *res)
{
    int post = stage == VG_RULES_POST;
    if (!post) {
        res->nfired = 0;
        res->strongest = VG_ACTION_ALLOW;
        res->any_allow = 0;
        res->truncated = 0;
    } else if (!rules->have_model || !rules->any_score || isnan(score)) {
        return;
    }
    for (size_t i = 0; i < rules->nrules; i++) {
        const vg_rule_t *r = &rules->rules[i];
        if (r->uses_score != post)
            continue;
        if (!run(rules, rules->code + r->code, txn, features, score))
            continue;
        add_fired(res, (uint16_t)i);
        if (r->shadow)
            continue;
        if (r->action == VG_ACTION_ALLOW)
            res->any_allow = 1;
        else if (r->action > (vg_action_t)res->strongest)
            res->strongest = (uint8_t)r->action;
    }
    res->action = res->any_allow ? VG_ACTION_ALLOW : (vg_action_t)res->strongest;
}
