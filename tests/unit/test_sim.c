/*
 * test_sim.c - the transaction simulator (engine/sim.h) on scaled-down configurations:
 * proportions against the handbook's figures scaled to the configuration, each scenario's
 * invariants checked by brute force, the contract of every emitted line, and determinism.
 */
#include "engine/contract.h"
#include "engine/sim.h"
#include "tests/unit/vg_test.h"

#include <math.h>

/* The handbook's run of its defaults (5000 customers, 10000 terminals, 183 days). */
#define HB_TXNS 1754155.0
#define HB_S1   973.0
#define HB_S2   9077.0
#define HB_S3   4631.0

static vg_sim_opts_t small_opts(void)
{
    vg_sim_opts_t o = vg_sim_opts_default();
    o.customers = 1000; /* terminals stay at 10000: same density, same neighbourhoods */
    o.days = 60;
    o.seed = 7;
    return o;
}

/* Mean number of days, over `days`, covered by compromises lasting `window` days (one set
 * a day): the ramp-up at the start is why a short run has fewer frauds per transaction. */
static double mean_cover(unsigned days, unsigned window)
{
    double s = 0;
    for (unsigned d = 0; d < days; d++)
        s += d + 1 < window ? d + 1 : window;
    return s / days;
}

static double dist(const vg_sim_t *sim, uint32_t customer, uint32_t terminal)
{
    const vg_sim_customer_t *cu = vg_sim_customer(sim, customer);
    const vg_sim_terminal_t *te = vg_sim_terminal(sim, terminal);
    return hypot(cu->x - te->x, cu->y - te->y);
}

static void test_bad_options(void)
{
    char errbuf[VG_ERRLEN];
    vg_sim_opts_t o = small_opts();
    o.customers = 0;
    VG_CHECK(vg_sim_new(&o, errbuf, sizeof(errbuf)) == NULL);
    VG_CHECK_STR(errbuf, "customers, terminals and days must be > 0");
    o = small_opts();
    o.radius = -1;
    VG_CHECK(vg_sim_new(&o, errbuf, sizeof(errbuf)) == NULL);
    VG_CHECK_STR(errbuf, "radius must be in (0, 200], got -1");
    unsigned bits = 99;
    VG_CHECK_INT(vg_sim_parse_scenarios("handbook,card_testing", &bits, errbuf, sizeof(errbuf)),
                 VG_OK);
    VG_CHECK_INT(bits, VG_SIM_S_HANDBOOK | VG_SIM_S_CARD_TESTING);
    VG_CHECK_INT(vg_sim_parse_scenarios("none", &bits, errbuf, sizeof(errbuf)), VG_OK);
    VG_CHECK_INT(bits, 0);
    VG_CHECK_INT(vg_sim_parse_scenarios("handbook,phishing", &bits, errbuf, sizeof(errbuf)),
                 VG_ERR_CONFIG);
    VG_CHECK_STR(errbuf, "unknown scenario 'phishing' (expected handbook, card_testing, "
                         "account_takeover, all or none)");
}

static void test_proportions(void)
{
    char errbuf[VG_ERRLEN];
    vg_sim_opts_t o = small_opts();
    vg_sim_t *sim = vg_sim_new(&o, errbuf, sizeof(errbuf));
    VG_CHECK(sim != NULL);
    if (!sim)
        return;
    vg_sim_stats_t st;
    vg_sim_stats(sim, &st);
    size_t n = vg_sim_count(sim);
    VG_CHECK_INT(st.transactions, n);

    /* transactions: sum over customers of rate x days x P(time inside the day), exact for
     * these profiles; the Poisson noise on ~116k is 0.3% */
    double p_in = erf(43200.0 / (20000.0 * sqrt(2.0)));
    double expect = 0, rate_sum = 0, p1 = 0;
    for (uint32_t c = 0; c < o.customers; c++) {
        const vg_sim_customer_t *cu = vg_sim_customer(sim, c);
        VG_CHECK(cu->mean_amount >= 5 && cu->mean_amount < 100);
        VG_CHECK(cu->std_amount == cu->mean_amount / 2);
        VG_CHECK(cu->mean_per_day >= 0 && cu->mean_per_day < 4);
        if (cu->nterminals == 0)
            continue;
        expect += cu->mean_per_day * o.days * p_in;
        rate_sum += cu->mean_per_day;
        /* P(N(m, m/2) > 220); a negative draw is redrawn below 2m <= 200, never above */
        p1 +=
            cu->mean_per_day * 0.5 * erfc((220.0 - cu->mean_amount) / (cu->std_amount * sqrt(2.0)));
    }
    p1 /= rate_sum;
    VG_CHECK_NEAR((double)n, expect, 0.02);
    /* per customer-day against the handbook's 1,754,155 / (5000 x 183) = 1.917; the
     * profiles of 1000 customers add ~2% of spread */
    VG_CHECK_NEAR((double)n / (o.customers * o.days), HB_TXNS / (5000.0 * 183), 0.07);
    VG_CHECK_INT(st.customers_without_terminals, 0);

    /* scenario 1 rate per transaction is scale-free: amounts above 220 among all */
    size_t over = 0;
    for (size_t i = 0; i < n; i++)
        over += vg_sim_txn(sim, i)->base_cents > 22000;
    double e_over = p1 * (double)n;
    VG_CHECK(fabs((double)over - e_over) <= 4 * sqrt(e_over));
    VG_CHECK_NEAR((double)over / n, HB_S1 / HB_TXNS, 0.35);

    /* scenario 2 per transaction scales with the days covered (same 10000 terminals);
     * scenario 3 with days covered and 1 / customers */
    double s2 = HB_S2 / HB_TXNS * mean_cover(o.days, 28) / mean_cover(183, 28);
    double s3 =
        HB_S3 / HB_TXNS * mean_cover(o.days, 14) / mean_cover(183, 14) * 5000.0 / o.customers;
    VG_CHECK_NEAR((double)st.by_scenario[VG_SIM_COMPROMISED_TERMINAL] / n, s2, 0.2);
    VG_CHECK_NEAR((double)st.by_scenario[VG_SIM_COMPROMISED_CUSTOMER] / n, s3, 0.2);
    VG_CHECK_NEAR((double)st.frauds / n, HB_S1 / HB_TXNS + s2 + s3, 0.15);
    VG_CHECK_INT(st.by_scenario[VG_SIM_CARD_TESTING] + st.by_scenario[VG_SIM_ACCOUNT_TAKEOVER], 0);
    VG_CHECK_INT(st.frauds, st.transactions - st.by_scenario[0]);
    VG_CHECK_INT(st.labels, st.frauds);
    fprintf(stderr,
            "  %zu txns (expected %.0f), over 220: %zu (expected %.1f), s2 %.4f%% (scaled "
            "handbook %.4f%%), s3 %.4f%% (scaled handbook %.4f%%)\n",
            n, expect, over, e_over,
            100.0 * (double)st.by_scenario[VG_SIM_COMPROMISED_TERMINAL] / (double)n, 100 * s2,
            100.0 * (double)st.by_scenario[VG_SIM_COMPROMISED_CUSTOMER] / (double)n, 100 * s3);
    vg_sim_free(sim);
}

/* Is `who` among the terminals/customers compromised on a day in [day - window + 1, day]? */
static int compromised_within(const vg_sim_t *sim, vg_sim_scenario_t kind, uint32_t day,
                              uint32_t window, uint32_t who)
{
    for (uint32_t c = day + 1 >= window ? day + 1 - window : 0; c <= day; c++) {
        uint32_t k;
        const uint32_t *v = vg_sim_compromised(sim, kind, c, &k);
        for (uint32_t j = 0; j < k; j++)
            if (v[j] == who)
                return 1;
    }
    return 0;
}

static void test_invariants(void)
{
    char errbuf[VG_ERRLEN];
    vg_sim_opts_t o = small_opts();
    o.days = 40;
    o.scenarios = VG_SIM_S_HANDBOOK | VG_SIM_S_CARD_TESTING | VG_SIM_S_ACCOUNT_TAKEOVER;
    o.card_testing_rate = 3;
    o.account_takeover_rate = 2;
    vg_sim_t *sim = vg_sim_new(&o, errbuf, sizeof(errbuf));
    VG_CHECK(sim != NULL);
    if (!sim)
        return;
    size_t n = vg_sim_count(sim);
    size_t bad_order = 0, bad_day = 0, bad_over = 0, bad_s1 = 0, bad_s2 = 0, missed_s2 = 0;
    size_t bad_s3 = 0, changed_not_s3 = 0, bad_ct = 0, bad_ato = 0, bad_device = 0;
    size_t ct_bursts = 0, ato_incidents = 0;
    for (size_t i = 0; i < n; i++) {
        const vg_sim_txn_t *tx = vg_sim_txn(sim, i);
        if (i > 0) {
            const vg_sim_txn_t *p = vg_sim_txn(sim, i - 1);
            bad_order += p->ts_ms > tx->ts_ms || (p->ts_ms == tx->ts_ms && p->gen >= tx->gen);
        }
        bad_day += tx->ts_ms < o.start_ms + tx->day * 86400000LL ||
                   tx->ts_ms >= o.start_ms + (tx->day + 1) * 86400000LL;
        bad_over += tx->amount_cents > 22000 && tx->scenario == VG_SIM_LEGIT;
        bad_device += (tx->channel == VG_SIM_ECOM) != (tx->device != 0) ||
                      (tx->device >= 2) != (tx->scenario >= VG_SIM_CARD_TESTING);
        if (tx->scenario >= VG_SIM_CARD_TESTING)
            continue;
        bad_s1 += tx->scenario == VG_SIM_AMOUNT && tx->base_cents <= 22000;
        int on_comp =
            compromised_within(sim, VG_SIM_COMPROMISED_TERMINAL, tx->day, 28, tx->terminal);
        bad_s2 += tx->scenario == VG_SIM_COMPROMISED_TERMINAL && !on_comp;
        missed_s2 += on_comp && tx->scenario < VG_SIM_COMPROMISED_TERMINAL;
        if (tx->scenario == VG_SIM_COMPROMISED_CUSTOMER) {
            int64_t a = tx->base_cents * 5; /* x5, or x25 under two overlapping compromises */
            bad_s3 +=
                !(tx->amount_cents == a || tx->amount_cents == a * 5) ||
                !compromised_within(sim, VG_SIM_COMPROMISED_CUSTOMER, tx->day, 14, tx->customer);
        }
        changed_not_s3 +=
            tx->amount_cents != tx->base_cents && tx->scenario != VG_SIM_COMPROMISED_CUSTOMER;
    }
    /* 2 distinct terminals and 3 distinct customers compromised every day */
    size_t bad_comp = 0;
    for (uint32_t d = 0; d < o.days; d++) {
        uint32_t kt, kc;
        const uint32_t *t = vg_sim_compromised(sim, VG_SIM_COMPROMISED_TERMINAL, d, &kt);
        const uint32_t *c = vg_sim_compromised(sim, VG_SIM_COMPROMISED_CUSTOMER, d, &kc);
        bad_comp += kt != 2 || kc != 3 || t[0] == t[1] || t[0] >= o.terminals ||
                    t[1] >= o.terminals || c[0] == c[1] || c[0] == c[2] || c[1] == c[2] ||
                    c[0] >= o.customers || c[1] >= o.customers || c[2] >= o.customers;
    }
    VG_CHECK_INT(bad_comp, 0);
    VG_CHECK_INT(bad_order, 0);
    VG_CHECK_INT(bad_day, 0);
    VG_CHECK_INT(bad_over, 0);
    VG_CHECK_INT(bad_device, 0);
    VG_CHECK_INT(bad_s1, 0);
    VG_CHECK_INT(bad_s2, 0);
    VG_CHECK_INT(missed_s2, 0);
    VG_CHECK_INT(bad_s3, 0);
    VG_CHECK_INT(changed_not_s3, 0);

    /* scenario 3 takes exactly a third (rounded down) of the union of the compromised
     * customers' handbook transactions over 14 days: check every compromise whose customers
     * no other compromise touches within 13 days either side (others could take more) */
    size_t checked = 0, bad_third = 0;
    for (uint32_t d = 0; d + 14 <= o.days; d++) {
        uint32_t k, k2;
        const uint32_t *cc = vg_sim_compromised(sim, VG_SIM_COMPROMISED_CUSTOMER, d, &k);
        int overlap = 0;
        for (uint32_t e = d >= 13 ? d - 13 : 0; e < d + 14 && e < o.days; e++) {
            const uint32_t *v = vg_sim_compromised(sim, VG_SIM_COMPROMISED_CUSTOMER, e, &k2);
            for (uint32_t j = 0; j < k2 && e != d; j++)
                overlap |= v[j] == cc[0] || v[j] == cc[1] || v[j] == cc[2];
        }
        if (overlap)
            continue;
        size_t in_window = 0, taken = 0;
        for (size_t i = 0; i < n; i++) {
            const vg_sim_txn_t *tx = vg_sim_txn(sim, i);
            if (tx->day < d || tx->day >= d + 14 || tx->scenario >= VG_SIM_CARD_TESTING)
                continue;
            if (tx->customer == cc[0] || tx->customer == cc[1] || tx->customer == cc[2]) {
                in_window++;
                taken += tx->scenario == VG_SIM_COMPROMISED_CUSTOMER;
            }
        }
        bad_third += taken != in_window / 3;
        checked++;
    }
    VG_CHECK(checked >= 10);
    VG_CHECK_INT(bad_third, 0);

    /* card testing: per burst (same card, same fraud device, one day), tiny ecom payments
     * 5-60 s apart, then one large payment; account takeover: a fraud device, ecom, at least
     * 45 grid units (450 km) from home, amounts at least 150 */
    for (size_t i = 0; i < n; i++) {
        const vg_sim_txn_t *tx = vg_sim_txn(sim, i);
        if (tx->scenario == VG_SIM_ACCOUNT_TAKEOVER) {
            bad_ato += tx->channel != VG_SIM_ECOM || tx->device < 2 ||
                       dist(sim, tx->customer, tx->terminal) < 45 || tx->amount_cents < 15000;
            /* the first of an incident: no earlier ATO txn for this card within 6 h */
            int first = 1;
            for (size_t j = i; j-- > 0;) {
                const vg_sim_txn_t *p = vg_sim_txn(sim, j);
                if (tx->ts_ms - p->ts_ms > 6 * 3600000LL)
                    break;
                first &= !(p->scenario == VG_SIM_ACCOUNT_TAKEOVER && p->customer == tx->customer);
            }
            ato_incidents += first;
        }
        if (tx->scenario != VG_SIM_CARD_TESTING || tx->amount_cents >= 300)
            continue;
        /* a probe: follow this burst's later txns; count probes, then expect the large one */
        int prev_small = 0;
        for (size_t j = i; j-- > 0;) {
            const vg_sim_txn_t *p = vg_sim_txn(sim, j);
            if (tx->ts_ms - p->ts_ms > 3600000LL)
                break;
            prev_small |= p->scenario == VG_SIM_CARD_TESTING && p->customer == tx->customer &&
                          p->device == tx->device && p->amount_cents < 300;
        }
        if (prev_small)
            continue; /* not the first probe of its burst */
        ct_bursts++;
        size_t probes = 0;
        int64_t last = 0, first_ts = tx->ts_ms;
        int done = 0;
        for (size_t j = i; j < n && !done; j++) {
            const vg_sim_txn_t *q = vg_sim_txn(sim, j);
            if (q->ts_ms - first_ts > 3600000LL)
                break;
            if (q->scenario != VG_SIM_CARD_TESTING || q->customer != tx->customer ||
                q->device != tx->device)
                continue;
            bad_ct += q->channel != VG_SIM_ECOM;
            if (q->amount_cents < 300) {
                bad_ct += probes > 0 && (q->ts_ms - last < 4999 || q->ts_ms - last > 60001);
                bad_ct += q->amount_cents < 50;
                probes++;
                last = q->ts_ms;
            } else {
                bad_ct +=
                    q->amount_cents < 25000 || q->ts_ms - last < 64999 || q->ts_ms - last > 660001;
                done = 1;
            }
        }
        bad_ct += !done || probes < 3;
    }
    VG_CHECK_INT(bad_ct, 0);
    VG_CHECK_INT(bad_ato, 0);
    /* incidents ~ Poisson(rate x days): 120 and 80 expected */
    VG_CHECK(fabs((double)ct_bursts - 120) <= 4 * sqrt(120.0));
    VG_CHECK(fabs((double)ato_incidents - 80) <= 4 * sqrt(80.0));
    fprintf(stderr, "  card-testing bursts %zu (expected 120), account takeovers %zu (80)\n",
            ct_bursts, ato_incidents);

    /* labels: one per fraud, ts = txn ts + delay, interleaved stream in time order */
    vg_sim_stats_t st;
    vg_sim_stats(sim, &st);
    vg_sim_event_t ev;
    size_t nlab = 0, ntx = 0, bad_label = 0, bad_stream = 0;
    int64_t prev = INT64_MIN;
    vg_sim_rewind(sim);
    while (vg_sim_next(sim, &ev)) {
        const vg_sim_txn_t *tx = vg_sim_txn(sim, ev.txn);
        bad_stream += ev.ts_ms < prev;
        prev = ev.ts_ms;
        if (ev.is_label) {
            nlab++;
            bad_label += tx->scenario == 0 || ev.ts_ms != tx->ts_ms + o.label_delay_ms;
        } else {
            bad_stream += ev.txn != ntx++;
        }
    }
    VG_CHECK_INT(ntx, n);
    VG_CHECK_INT(nlab, st.frauds);
    VG_CHECK_INT(bad_label, 0);
    VG_CHECK_INT(bad_stream, 0);
    vg_sim_free(sim);
}

/* Every line decodes under the contract and says what the record holds. */
static void test_contract(void)
{
    char errbuf[VG_ERRLEN], reason[256], id[32], ts[32];
    vg_sim_opts_t o = small_opts();
    o.customers = 200;
    o.days = 10;
    o.label_legit = 1;
    o.label_delay_ms = 3600000;
    o.scenarios = VG_SIM_S_HANDBOOK | VG_SIM_S_CARD_TESTING | VG_SIM_S_ACCOUNT_TAKEOVER;
    vg_sim_t *sim = vg_sim_new(&o, errbuf, sizeof(errbuf));
    VG_CHECK(sim != NULL);
    if (!sim)
        return;
    vg_schema_t schema;
    vg_schema_init(&schema);
    vg_arena_t arena;
    vg_arena_init(&arena, 0);
    vg_buf_t buf;
    vg_buf_init(&buf);
    size_t n = vg_sim_count(sim), bad = 0, fraud_in_txn = 0;
    for (size_t i = 0; i < n; i++) {
        const vg_sim_txn_t *tx = vg_sim_txn(sim, i);
        vg_buf_reset(&buf);
        vg_sim_encode_txn(sim, i, &buf);
        if (buf.len == 0 || buf.data[buf.len - 1] != '\n' || memchr(buf.data, '\n', buf.len - 1)) {
            bad++;
            continue;
        }
        fraud_in_txn += strstr(buf.data, "fraud") != NULL || strstr(buf.data, "scenario");
        vg_txn_t txn;
        vg_arena_reset(&arena);
        if (vg_txn_decode(&schema, buf.data, buf.len - 1, &arena, &txn, reason, sizeof(reason))) {
            fprintf(stderr, "  line %zu: %s\n", i, reason);
            bad++;
            continue;
        }
        vg_sim_txn_id(i, id);
        bad += strcmp(txn.str[VG_F_TXN_ID], id) != 0;
        vg_sim_card_id(tx->customer, id);
        bad += strcmp(txn.str[VG_F_CARD_ID], id) != 0;
        bad += txn.ts_ms != tx->ts_ms;
        bad += llround(txn.amount * 100) != tx->amount_cents;
        bad += strcmp(txn.str[VG_F_CHANNEL], vg_sim_channel_name(tx->channel)) != 0;
        bad += (txn.str[VG_F_DEVICE_ID] != NULL) != (tx->device != 0);
        bad += (txn.str[VG_F_IP] != NULL) != (tx->device != 0);
        bad += strcmp(txn.str[VG_F_CURRENCY], "EUR") != 0 || !txn.str[VG_F_MERCHANT_ID] ||
               !txn.str[VG_F_MCC] || !txn.str[VG_F_CUSTOMER_ID] || !txn.str[VG_F_TERMINAL_ID];
        double lat, lon;
        const vg_sim_terminal_t *te = vg_sim_terminal(sim, tx->terminal);
        vg_sim_grid_to_latlon(te->x, te->y, &lat, &lon);
        bad += fabs(txn.lat - lat) > 0.6e-5 || fabs(txn.lon - lon) > 0.6e-5;

        vg_buf_reset(&buf);
        VG_CHECK(vg_sim_has_label(sim, i));
        vg_sim_encode_label(sim, i, &buf);
        vg_label_t label;
        if (vg_label_decode(buf.data, buf.len - 1, &arena, &label, reason, sizeof(reason))) {
            fprintf(stderr, "  label %zu: %s\n", i, reason);
            bad++;
            continue;
        }
        vg_sim_txn_id(i, id);
        bad += strcmp(label.txn_id, id) != 0 || label.fraud != (tx->scenario != 0) ||
               label.ts_ms != tx->ts_ms + 3600000 || strcmp(label.source, "simulator") != 0;
        if (tx->scenario) {
            char want[64];
            snprintf(want, sizeof(want), "\"scenario\":\"%s\"", vg_sim_scenario_name(tx->scenario));
            bad += strstr(buf.data, want) == NULL;
        }
    }
    VG_CHECK(n > 1000);
    VG_CHECK_INT(bad, 0);
    VG_CHECK_INT(fraud_in_txn, 0);

    /* one exact line, to pin the format */
    vg_buf_reset(&buf);
    vg_sim_encode_txn(sim, 0, &buf);
    const vg_sim_txn_t *t0 = vg_sim_txn(sim, 0);
    vg_time_format(t0->ts_ms, ts);
    VG_CHECK(strncmp(buf.data, "{\"txn_id\":\"t0000000000\",\"ts\":\"", 30) == 0);
    VG_CHECK(strncmp(buf.data + 30, ts, 24) == 0);
    vg_buf_free(&buf);
    vg_arena_free(&arena);
    vg_schema_free(&schema);
    vg_sim_free(sim);
}

/* All transaction and label bytes of a configuration. */
static void encode_all(const vg_sim_opts_t *o, vg_buf_t *out)
{
    char errbuf[VG_ERRLEN];
    vg_sim_t *sim = vg_sim_new(o, errbuf, sizeof(errbuf));
    VG_CHECK(sim != NULL);
    if (!sim)
        return;
    vg_sim_event_t ev;
    while (vg_sim_next(sim, &ev)) {
        if (ev.is_label)
            vg_sim_encode_label(sim, ev.txn, out);
        else
            vg_sim_encode_txn(sim, ev.txn, out);
    }
    vg_sim_free(sim);
}

static int files_equal(const char *a, const char *b)
{
    char *da, *db;
    size_t la, lb;
    char errbuf[VG_ERRLEN];
    if (vg_read_file(a, &da, &la, errbuf, sizeof(errbuf)))
        return -1;
    if (vg_read_file(b, &db, &lb, errbuf, sizeof(errbuf))) {
        free(da);
        return -1;
    }
    int eq = la == lb && memcmp(da, db, la) == 0;
    free(da);
    free(db);
    return eq;
}

static void test_determinism(void)
{
    vg_sim_opts_t o = small_opts();
    o.customers = 300;
    o.days = 20;
    o.scenarios = VG_SIM_S_HANDBOOK | VG_SIM_S_CARD_TESTING | VG_SIM_S_ACCOUNT_TAKEOVER;
    vg_buf_t a, b, c;
    vg_buf_init(&a);
    vg_buf_init(&b);
    vg_buf_init(&c);
    encode_all(&o, &a);
    encode_all(&o, &b);
    o.seed = 8;
    encode_all(&o, &c);
    VG_CHECK(a.len > 100000);
    VG_CHECK(a.len == b.len && memcmp(a.data, b.data, a.len) == 0);
    VG_CHECK(a.len != c.len || memcmp(a.data, c.data, a.len) != 0);
    vg_buf_free(&a);
    vg_buf_free(&b);
    vg_buf_free(&c);

    /* through files, as `vigil simulate --out` writes them */
    char errbuf[VG_ERRLEN], pa[4200], pb[4400];
    char *d1 = vg_test_tmpdir(), *d2 = vg_test_tmpdir(), *d3 = vg_test_tmpdir();
    const char *dirs[3] = {d1, d2, d3};
    uint64_t bytes[3] = {0, 0, 0};
    for (int k = 0; k < 3; k++) {
        o.seed = k < 2 ? 11 : 12;
        vg_sim_t *sim = vg_sim_new(&o, errbuf, sizeof(errbuf));
        VG_CHECK_INT(vg_sim_write_files(sim, dirs[k], &bytes[k], errbuf, sizeof(errbuf)), VG_OK);
        vg_sim_free(sim);
    }
    VG_CHECK(bytes[0] > 0 && bytes[0] == bytes[1]);
    const char *names[2] = {"transactions.jsonl", "labels.jsonl"};
    for (int f = 0; f < 2; f++) {
        snprintf(pa, sizeof(pa), "%s/%s", d1, names[f]);
        snprintf(pb, sizeof(pb), "%s/%s", d2, names[f]);
        VG_CHECK_INT(files_equal(pa, pb), 1);
        snprintf(pb, sizeof(pb), "%s/%s", d3, names[f]);
        VG_CHECK_INT(files_equal(pa, pb), 0);
    }
    for (int k = 0; k < 3; k++) {
        for (int f = 0; f < 2; f++) {
            snprintf(pa, sizeof(pa), "%s/%s", dirs[k], names[f]);
            remove(pa);
        }
        remove(dirs[k]);
    }
    /* a directory that does not exist: the path and the reason */
    vg_sim_t *sim = vg_sim_new(&o, errbuf, sizeof(errbuf));
    snprintf(pa, sizeof(pa), "%s/missing", d1);
    VG_CHECK_INT(vg_sim_write_files(sim, pa, NULL, errbuf, sizeof(errbuf)), VG_ERR_IO);
    snprintf(pb, sizeof(pb), "cannot create %s/transactions.jsonl: No such file or directory", pa);
    VG_CHECK_STR(errbuf, pb);
    vg_sim_free(sim);
    free(d1);
    free(d2);
    free(d3);
}

/* The handbook's transactions and frauds are the same with the extra scenarios on. */
static void test_extras_leave_handbook_alone(void)
{
    char errbuf[VG_ERRLEN];
    vg_sim_opts_t o = small_opts();
    o.customers = 300;
    o.days = 30;
    vg_sim_t *plain = vg_sim_new(&o, errbuf, sizeof(errbuf));
    o.scenarios |= VG_SIM_S_CARD_TESTING | VG_SIM_S_ACCOUNT_TAKEOVER;
    vg_sim_t *extra = vg_sim_new(&o, errbuf, sizeof(errbuf));
    size_t i = 0, j = 0, diff = 0, extras = 0;
    while (i < vg_sim_count(plain) && j < vg_sim_count(extra)) {
        const vg_sim_txn_t *b = vg_sim_txn(extra, j);
        if (b->scenario >= VG_SIM_CARD_TESTING) {
            extras++;
            j++;
            continue;
        }
        const vg_sim_txn_t *a = vg_sim_txn(plain, i);
        diff += a->ts_ms != b->ts_ms || a->customer != b->customer || a->terminal != b->terminal ||
                a->amount_cents != b->amount_cents || a->scenario != b->scenario ||
                a->channel != b->channel;
        i++;
        j++;
    }
    while (j < vg_sim_count(extra))
        extras += vg_sim_txn(extra, j++)->scenario >= VG_SIM_CARD_TESTING;
    VG_CHECK_INT(i, vg_sim_count(plain));
    VG_CHECK_INT(j, vg_sim_count(extra));
    VG_CHECK_INT(diff, 0);
    vg_sim_stats_t st;
    vg_sim_stats(extra, &st);
    VG_CHECK(extras > 0);
    VG_CHECK_INT(extras,
                 st.by_scenario[VG_SIM_CARD_TESTING] + st.by_scenario[VG_SIM_ACCOUNT_TAKEOVER]);
    vg_sim_free(plain);
    vg_sim_free(extra);
}

int main(void)
{
    VG_RUN(test_bad_options);
    VG_RUN(test_proportions);
    VG_RUN(test_invariants);
    VG_RUN(test_contract);
    VG_RUN(test_determinism);
    VG_RUN(test_extras_leave_handbook_alone);
    return vg_test_done();
}
