/*
 * sim.c - the transaction simulator (see sim.h and docs/simulator.md).
 *
 * The process, in the order it runs:
 *  1. profiles: customers (home, amount mean/std, daily rate, channel mix) and terminals
 *     (location), each uniform on the [0, 100]^2 grid; terminals are bucketed in a grid of
 *     cells one radius wide, so a customer's terminals within the radius come from at most
 *     3x3 cells instead of a scan of all terminals;
 *  2. transactions, day by day, customer by customer: Poisson(mean per day) draws, times
 *     ~ N(43200 s, 20000 s) with draws outside the day discarded, amounts ~ N(mean, std)
 *     (a negative draw replaced by Uniform(0, 2 mean)), rounded to cents, a terminal chosen
 *     uniformly among the customer's; then the day's card-testing and account-takeover
 *     incidents (if on); then the day is sorted by (ts, generation order);
 *  3. the handbook's fraud scenarios, day by day in the handbook's order: amount > 220,
 *     2 compromised terminals (next 28 days), 3 compromised customers (a third of the
 *     union of their transactions over the next 14 days, x5). A transaction's scenario is
 *     the highest that touched it, which is what the handbook's table ends with (it applies
 *     scenario 1 to the whole table, then 2, then 3, each overwriting the last).
 *
 * Invariants: every day's transactions lie inside the day, so the concatenation of the
 * sorted days is the global time order, and the index of a transaction is its txn_id.
 * Extra-scenario transactions are never touched by the handbook's scenarios.
 */
#include "engine/sim.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define DAY_MS 86400000LL
#define GRID   100.0
/* Fraudsters' shared devices and IPs: fraud rings reuse them, which device and IP features
 * can learn from. */
#define POOL 64

/* ---- random numbers: xoshiro256**, seeded by splitmix64, one stream per purpose ---- */

enum { S_PROFILES = 1, S_TXNS, S_ATTRS, S_FRAUD, S_CARD_TESTING, S_TAKEOVER, S_IDS };

typedef struct rng {
    uint64_t s[4];
} rng_t;

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static void rng_seed(rng_t *r, uint64_t seed, uint64_t stream)
{
    uint64_t x = seed ^ (stream * 0xd1b54a32d192ed03ULL);
    for (int i = 0; i < 4; i++)
        r->s[i] = splitmix64(&x);
}

static inline uint64_t rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

static inline uint64_t rng_next(rng_t *r)
{
    uint64_t *s = r->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

/* Uniform on [0, 1), 53 bits. */
static inline double rng_unit(rng_t *r)
{
    return (double)(rng_next(r) >> 11) * 0x1.0p-53;
}

static inline double rng_uniform(rng_t *r, double a, double b)
{
    return a + (b - a) * rng_unit(r);
}

/* Uniform on [0, n), by multiply-shift (bias below 2^-32 for any n < 2^32). */
static inline uint32_t rng_below(rng_t *r, uint32_t n)
{
    return (uint32_t)(((rng_next(r) >> 32) * (uint64_t)n) >> 32);
}

/* Marsaglia's polar method; the second value of each pair is thrown away so that a draw
 * depends only on the stream's position, not on what was drawn before. */
static double rng_normal(rng_t *r, double mu, double sigma)
{
    double u, v, s;
    do {
        u = 2.0 * rng_unit(r) - 1.0;
        v = 2.0 * rng_unit(r) - 1.0;
        s = u * u + v * v;
    } while (s >= 1.0 || s == 0.0);
    return mu + sigma * u * sqrt(-2.0 * log(s) / s);
}

/* Knuth's multiplication method, exact; a large mean is split into chunks of 30 (a sum of
 * Poissons is Poisson) so exp(-mean) never underflows and the loop stays short. */
static uint32_t rng_poisson(rng_t *r, double mean)
{
    uint32_t total = 0;
    while (mean > 0) {
        double chunk = mean > 30 ? 30 : mean;
        mean -= chunk;
        double limit = exp(-chunk), p = rng_unit(r);
        uint32_t k = 0;
        while (p > limit) {
            k++;
            p *= rng_unit(r);
        }
        total += k;
    }
    return total;
}

/* ---- the simulator ---- */

struct vg_sim {
    vg_sim_opts_t opts;
    vg_sim_customer_t *customers;
    vg_sim_terminal_t *terminals;
    uint32_t *cust_terms; /* every customer's terminal list, end to end */
    size_t ncust_terms;
    /* grid index of terminals: cell c holds cell_terms[cell_start[c] .. cell_start[c+1]) */
    uint32_t ncells;
    double cell_size;
    uint32_t *cell_start, *cell_terms;

    vg_sim_txn_t *txns;
    size_t ntxns, captxns;
    size_t *day_start;                         /* day d is txns[day_start[d] .. day_start[d+1]) */
    uint32_t *comp_terminals, *comp_customers; /* 2 and 3 per day */
    uint32_t *labels;                          /* transactions with a label, in label-ts order */
    size_t nlabels;
    vg_sim_stats_t stats;

    /* pre-encoded JSON fragments: customer c is frag[cust_off[c] .. cust_off[c+1]) etc. */
    vg_buf_t frag;
    uint32_t *cust_off, *dev_off, *term_off, *pool_off;

    size_t next_txn, next_label; /* vg_sim_next() position */
};

vg_sim_opts_t vg_sim_opts_default(void)
{
    vg_sim_opts_t o = {
        .customers = 5000,
        .terminals = 10000,
        .days = 183,
        .start_ms = vg_days_from_civil(2018, 4, 1) * DAY_MS,
        .seed = 1,
        .label_delay_ms = 7 * DAY_MS,
        .radius = 5,
        .scenarios = VG_SIM_S_HANDBOOK,
        .card_testing_rate = 2,
        .account_takeover_rate = 1,
        .label_legit = 0,
    };
    return o;
}

static const char *const scenario_names[VG_SIM_NSCENARIOS] = {
    "legit",        "amount",           "compromised_terminal", "compromised_customer",
    "card_testing", "account_takeover",
};

const char *vg_sim_scenario_name(vg_sim_scenario_t scenario)
{
    return (unsigned)scenario < VG_SIM_NSCENARIOS ? scenario_names[scenario] : "unknown";
}

const char *vg_sim_channel_name(vg_sim_channel_t channel)
{
    switch (channel) {
    case VG_SIM_POS:
        return "pos";
    case VG_SIM_ECOM:
        return "ecom";
    case VG_SIM_ATM:
        return "atm";
    }
    return "unknown";
}

vg_err_t vg_sim_parse_scenarios(const char *list, unsigned *bits, char *errbuf, size_t errlen)
{
    unsigned b = 0;
    const char *p = list;
    for (;;) {
        size_t n = strcspn(p, ",");
        if (n == 8 && strncmp(p, "handbook", n) == 0)
            b |= VG_SIM_S_HANDBOOK;
        else if (n == 12 && strncmp(p, "card_testing", n) == 0)
            b |= VG_SIM_S_CARD_TESTING;
        else if (n == 16 && strncmp(p, "account_takeover", n) == 0)
            b |= VG_SIM_S_ACCOUNT_TAKEOVER;
        else if (n == 3 && strncmp(p, "all", n) == 0)
            b |= VG_SIM_S_HANDBOOK | VG_SIM_S_CARD_TESTING | VG_SIM_S_ACCOUNT_TAKEOVER;
        else if (n == 4 && strncmp(p, "none", n) == 0)
            ;
        else
            return vg_errf(errbuf, errlen, VG_ERR_CONFIG,
                           "unknown scenario '%.*s' (expected handbook, card_testing, "
                           "account_takeover, all or none)",
                           (int)n, p);
        if (p[n] == '\0')
            break;
        p += n + 1;
    }
    *bits = b;
    return VG_OK;
}

void vg_sim_grid_to_latlon(double x, double y, double *lat, double *lon)
{
    /* 1 grid unit = 10 km: 100 x 100 units is a 1000 km square from 42N 2W, roughly
     * France. A degree of latitude is 111.32 km; a degree of longitude at the box's middle
     * latitude (46.5N) is 111.32 cos(46.5) = 76.63 km. */
    *lat = 42.0 + y * 10.0 / 111.32;
    *lon = -2.0 + x * 10.0 / 76.63;
}

/* ---- ids and JSON fragments ---- */

/* Appends v in decimal, zero-padded to at least `width` digits. */
static void put_uint(vg_buf_t *buf, uint64_t v, int width)
{
    char tmp[24];
    int n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    while (n < width)
        tmp[n++] = '0';
    vg_buf_reserve(buf, (size_t)n);
    while (n)
        buf->data[buf->len++] = tmp[--n];
    buf->data[buf->len] = '\0';
}

void vg_sim_card_id(uint32_t customer, char out[32])
{
    snprintf(out, 32, "card-%07u", customer);
}

void vg_sim_txn_id(size_t i, char out[32])
{
    snprintf(out, 32, "t%010zu", i);
}

static void put_key_str(vg_buf_t *buf, const char *key, const char *val)
{
    vg_buf_putc(buf, ',');
    vg_buf_json_str(buf, key, strlen(key));
    vg_buf_putc(buf, ':');
    vg_buf_json_str(buf, val, strlen(val));
}

static const char *const mccs[] = {"5411", "5812", "5541", "5311", "5999",
                                   "5912", "5732", "4111", "5814", "7011"};

/* Every part of a transaction line that depends only on its customer, device or terminal
 * is encoded once here, so encoding a transaction is mostly memcpy. */
static void build_fragments(vg_sim_t *sim)
{
    const vg_sim_opts_t *o = &sim->opts;
    char tmp[64];
    vg_buf_t *f = &sim->frag;
    sim->cust_off = vg_xmalloc((o->customers + 1) * sizeof(uint32_t));
    sim->dev_off = vg_xmalloc((o->customers + 1) * sizeof(uint32_t));
    sim->term_off = vg_xmalloc((o->terminals + 1) * sizeof(uint32_t));
    sim->pool_off = vg_xmalloc((POOL + 1) * sizeof(uint32_t));
    for (uint32_t c = 0; c < o->customers; c++) {
        sim->cust_off[c] = (uint32_t)f->len;
        vg_sim_card_id(c, tmp);
        put_key_str(f, "card_id", tmp);
        snprintf(tmp, sizeof(tmp), "cust-%07u", c);
        put_key_str(f, "customer_id", tmp);
    }
    sim->cust_off[o->customers] = (uint32_t)f->len;
    uint64_t h = o->seed ^ ((uint64_t)S_IDS << 56);
    for (uint32_t c = 0; c < o->customers; c++) {
        sim->dev_off[c] = (uint32_t)f->len;
        snprintf(tmp, sizeof(tmp), "dev-%016llx", (unsigned long long)splitmix64(&h));
        put_key_str(f, "device_id", tmp);
        uint32_t n = c + 1; /* 10.0.0.0/8: one address per customer's home */
        snprintf(tmp, sizeof(tmp), "10.%u.%u.%u", (n >> 16) & 255, (n >> 8) & 255, n & 255);
        put_key_str(f, "ip", tmp);
    }
    sim->dev_off[o->customers] = (uint32_t)f->len;
    for (uint32_t k = 0; k < POOL; k++) {
        sim->pool_off[k] = (uint32_t)f->len;
        snprintf(tmp, sizeof(tmp), "dev-%016llx", (unsigned long long)splitmix64(&h));
        put_key_str(f, "device_id", tmp);
        snprintf(tmp, sizeof(tmp), "203.0.113.%u", k + 1); /* TEST-NET-3 */
        put_key_str(f, "ip", tmp);
    }
    sim->pool_off[POOL] = (uint32_t)f->len;
    for (uint32_t t = 0; t < o->terminals; t++) {
        sim->term_off[t] = (uint32_t)f->len;
        snprintf(tmp, sizeof(tmp), "term-%07u", t);
        put_key_str(f, "terminal_id", tmp);
        /* several terminals per merchant: a merchant is 4 consecutive terminal numbers */
        snprintf(tmp, sizeof(tmp), "merch-%06u", t / 4);
        put_key_str(f, "merchant_id", tmp);
        uint64_t mh = (uint64_t)(t / 4) * 0x9e3779b97f4a7c15ULL;
        put_key_str(f, "mcc", mccs[(mh >> 40) % VG_ARRAY_LEN(mccs)]);
        put_key_str(f, "country", "FR");
        double lat, lon;
        vg_sim_grid_to_latlon(sim->terminals[t].x, sim->terminals[t].y, &lat, &lon);
        vg_buf_puts(f, ",\"lat\":");
        vg_buf_json_num(f, round(lat * 1e5) / 1e5);
        vg_buf_puts(f, ",\"lon\":");
        vg_buf_json_num(f, round(lon * 1e5) / 1e5);
        vg_buf_puts(f, "}\n");
    }
    sim->term_off[o->terminals] = (uint32_t)f->len;
}

/* ---- profiles and the grid index ---- */

static uint32_t cell_of(const vg_sim_t *sim, double v)
{
    long c = (long)(v / sim->cell_size);
    if (c < 0)
        c = 0;
    if (c >= (long)sim->ncells)
        c = (long)sim->ncells - 1;
    return (uint32_t)c;
}

static void build_grid(vg_sim_t *sim)
{
    uint32_t nt = sim->opts.terminals;
    double cells = ceil(GRID / sim->opts.radius);
    sim->ncells = cells < 1 ? 1 : cells > 1000 ? 1000 : (uint32_t)cells;
    sim->cell_size = GRID / sim->ncells;
    size_t ncell2 = (size_t)sim->ncells * sim->ncells;
    sim->cell_start = vg_xcalloc(ncell2 + 1, sizeof(uint32_t));
    sim->cell_terms = vg_xmalloc((nt ? nt : 1) * sizeof(uint32_t));
    uint32_t *cell = vg_xmalloc((nt ? nt : 1) * sizeof(uint32_t));
    for (uint32_t t = 0; t < nt; t++) {
        cell[t] =
            cell_of(sim, sim->terminals[t].y) * sim->ncells + cell_of(sim, sim->terminals[t].x);
        sim->cell_start[cell[t] + 1]++;
    }
    for (size_t c = 0; c < ncell2; c++)
        sim->cell_start[c + 1] += sim->cell_start[c];
    uint32_t *fill = vg_xmalloc(ncell2 * sizeof(uint32_t));
    memcpy(fill, sim->cell_start, ncell2 * sizeof(uint32_t));
    for (uint32_t t = 0; t < nt; t++) /* counting sort: terminal order kept within a cell */
        sim->cell_terms[fill[cell[t]]++] = t;
    free(fill);
    free(cell);
}

/* Calls back every terminal strictly within r of (x, y), cell by cell, in a fixed order. */
static void terminals_within(const vg_sim_t *sim, double x, double y, double r,
                             void (*fn)(void *ctx, uint32_t t), void *ctx)
{
    uint32_t x0 = cell_of(sim, x - r), x1 = cell_of(sim, x + r);
    uint32_t y0 = cell_of(sim, y - r), y1 = cell_of(sim, y + r);
    for (uint32_t cy = y0; cy <= y1; cy++)
        for (uint32_t cx = x0; cx <= x1; cx++) {
            uint32_t c = cy * sim->ncells + cx;
            for (uint32_t i = sim->cell_start[c]; i < sim->cell_start[c + 1]; i++) {
                uint32_t t = sim->cell_terms[i];
                double dx = sim->terminals[t].x - x, dy = sim->terminals[t].y - y;
                if (dx * dx + dy * dy < r * r)
                    fn(ctx, t);
            }
        }
}

typedef struct tlist {
    uint32_t *v;
    size_t n, cap;
} tlist_t;

static void tlist_push(void *ctx, uint32_t t)
{
    tlist_t *l = ctx;
    if (l->n == l->cap) {
        l->cap = l->cap ? 2 * l->cap : 1024;
        l->v = vg_xrealloc(l->v, l->cap * sizeof(uint32_t));
    }
    l->v[l->n++] = t;
}

static void build_profiles(vg_sim_t *sim)
{
    const vg_sim_opts_t *o = &sim->opts;
    rng_t r;
    rng_seed(&r, o->seed, S_PROFILES);
    sim->customers = vg_xcalloc(o->customers, sizeof(vg_sim_customer_t));
    sim->terminals = vg_xcalloc(o->terminals, sizeof(vg_sim_terminal_t));
    for (uint32_t c = 0; c < o->customers; c++) {
        vg_sim_customer_t *cu = &sim->customers[c];
        cu->x = rng_uniform(&r, 0, GRID);
        cu->y = rng_uniform(&r, 0, GRID);
        cu->mean_amount = rng_uniform(&r, 5, 100);
        cu->std_amount = cu->mean_amount / 2;
        cu->mean_per_day = rng_uniform(&r, 0, 4);
    }
    for (uint32_t t = 0; t < o->terminals; t++) {
        sim->terminals[t].x = rng_uniform(&r, 0, GRID);
        sim->terminals[t].y = rng_uniform(&r, 0, GRID);
    }
    /* The channel mix has its own stream so that the handbook's profiles above are the
     * same whatever vigil adds. */
    rng_t ra;
    rng_seed(&ra, o->seed, S_ATTRS);
    for (uint32_t c = 0; c < o->customers; c++) {
        sim->customers[c].p_ecom = rng_uniform(&ra, 0.05, 0.35);
        sim->customers[c].p_atm = rng_uniform(&ra, 0, 0.1);
    }
    build_grid(sim);
    tlist_t all = {0};
    for (uint32_t c = 0; c < o->customers; c++) {
        vg_sim_customer_t *cu = &sim->customers[c];
        size_t before = all.n;
        terminals_within(sim, cu->x, cu->y, o->radius, tlist_push, &all);
        cu->first_terminal = (uint32_t)before;
        cu->nterminals = (uint32_t)(all.n - before);
        if (cu->nterminals == 0)
            sim->stats.customers_without_terminals++;
    }
    sim->cust_terms = all.v;
    sim->ncust_terms = all.n;
}

/* ---- transactions ---- */

static vg_sim_txn_t *push_txn(vg_sim_t *sim)
{
    if (sim->ntxns == sim->captxns) {
        sim->captxns = sim->captxns ? sim->captxns * 3 / 2 : 65536;
        sim->txns = vg_xrealloc(sim->txns, sim->captxns * sizeof(vg_sim_txn_t));
    }
    vg_sim_txn_t *tx = &sim->txns[sim->ntxns];
    memset(tx, 0, sizeof(*tx));
    tx->gen = (uint32_t)sim->ntxns;
    return &sim->txns[sim->ntxns++];
}

static int txn_cmp(const void *a, const void *b)
{
    const vg_sim_txn_t *x = a, *y = b;
    if (x->ts_ms != y->ts_ms)
        return x->ts_ms < y->ts_ms ? -1 : 1;
    return x->gen < y->gen ? -1 : x->gen > y->gen;
}

/* A customer with at least one terminal, or UINT32_MAX when there is none at all. */
static uint32_t random_active_customer(vg_sim_t *sim, rng_t *r)
{
    if (sim->stats.customers_without_terminals == sim->opts.customers)
        return UINT32_MAX;
    for (;;) {
        uint32_t c = rng_below(r, sim->opts.customers);
        if (sim->customers[c].nterminals)
            return c;
    }
}

static void card_testing_day(vg_sim_t *sim, rng_t *r, uint32_t day, int64_t day_ms)
{
    uint32_t incidents = rng_poisson(r, sim->opts.card_testing_rate);
    for (uint32_t i = 0; i < incidents; i++) {
        uint32_t c = random_active_customer(sim, r);
        if (c == UINT32_MAX)
            return;
        uint16_t device = (uint16_t)(2 + rng_below(r, POOL));
        /* at most 30 probes x 60 s + 600 s < 1 h: the burst ends inside the day */
        double t = rng_uniform(r, 0, 86400 - 3600);
        uint32_t probes = 3 + rng_poisson(r, 5);
        if (probes > 30)
            probes = 30;
        for (uint32_t k = 0; k <= probes; k++) {
            int large = k == probes;
            if (large) /* 1 to 11 minutes after the last probe */
                t += rng_uniform(r, 60, 600);
            vg_sim_txn_t *tx = push_txn(sim);
            tx->ts_ms = day_ms + (int64_t)(t * 1000);
            tx->customer = c;
            tx->terminal = rng_below(r, sim->opts.terminals); /* online shops anywhere */
            tx->amount_cents = large ? 25000 + rng_below(r, 125001) : 50 + rng_below(r, 250);
            tx->base_cents = tx->amount_cents;
            tx->day = (uint16_t)day;
            tx->channel = VG_SIM_ECOM;
            tx->scenario = VG_SIM_CARD_TESTING;
            tx->device = device;
            t += rng_uniform(r, 5, 60);
        }
    }
}

static void takeover_day(vg_sim_t *sim, rng_t *r, uint32_t day, int64_t day_ms, tlist_t *near)
{
    uint32_t incidents = rng_poisson(r, sim->opts.account_takeover_rate);
    for (uint32_t i = 0; i < incidents; i++) {
        uint32_t c = random_active_customer(sim, r);
        if (c == UINT32_MAX)
            return;
        const vg_sim_customer_t *cu = &sim->customers[c];
        uint16_t device = (uint16_t)(2 + rng_below(r, POOL));
        /* far from home: at least 50 grid units (500 km), else the farthest of 64 tries */
        uint32_t far = 0;
        double best = -1;
        for (int k = 0; k < 64; k++) {
            uint32_t t = rng_below(r, sim->opts.terminals);
            double dx = sim->terminals[t].x - cu->x, dy = sim->terminals[t].y - cu->y;
            double d2 = dx * dx + dy * dy;
            if (d2 > best) {
                best = d2;
                far = t;
            }
            if (d2 >= 50.0 * 50.0)
                break;
        }
        near->n = 0;
        terminals_within(sim, sim->terminals[far].x, sim->terminals[far].y, sim->opts.radius,
                         tlist_push, near);
        /* at most 10 payments x 30 min after a start 6 h before midnight */
        double t = rng_uniform(r, 0, 86400 - 6 * 3600);
        uint32_t n = 2 + rng_poisson(r, 2);
        if (n > 10)
            n = 10;
        for (uint32_t k = 0; k < n; k++) {
            vg_sim_txn_t *tx = push_txn(sim);
            tx->ts_ms = day_ms + (int64_t)(t * 1000);
            tx->customer = c;
            tx->terminal = near->n ? near->v[rng_below(r, (uint32_t)near->n)] : far;
            double amount = cu->mean_amount * rng_uniform(r, 5, 10) + rng_uniform(r, 150, 500);
            tx->amount_cents = llround(amount * 100);
            tx->base_cents = tx->amount_cents;
            tx->day = (uint16_t)day;
            tx->channel = VG_SIM_ECOM;
            tx->scenario = VG_SIM_ACCOUNT_TAKEOVER;
            tx->device = device;
            t += rng_uniform(r, 120, 1800);
        }
    }
}

static void generate(vg_sim_t *sim)
{
    const vg_sim_opts_t *o = &sim->opts;
    rng_t rt, ra, rc, rk;
    rng_seed(&rt, o->seed, S_TXNS);
    rng_seed(&ra, o->seed ^ 0x5bd1e995ULL, S_ATTRS);
    rng_seed(&rc, o->seed, S_CARD_TESTING);
    rng_seed(&rk, o->seed, S_TAKEOVER);
    tlist_t near = {0};
    sim->day_start = vg_xmalloc((o->days + 1) * sizeof(size_t));
    for (uint32_t d = 0; d < o->days; d++) {
        int64_t day_ms = o->start_ms + (int64_t)d * DAY_MS;
        sim->day_start[d] = sim->ntxns;
        for (uint32_t c = 0; c < o->customers; c++) {
            const vg_sim_customer_t *cu = &sim->customers[c];
            uint32_t n = rng_poisson(&rt, cu->mean_per_day);
            for (uint32_t k = 0; k < n; k++) {
                double t = rng_normal(&rt, 43200, 20000);
                if (t < 0 || t >= 86400)
                    continue;
                double amount = rng_normal(&rt, cu->mean_amount, cu->std_amount);
                if (amount < 0)
                    amount = rng_uniform(&rt, 0, 2 * cu->mean_amount);
                if (cu->nterminals == 0)
                    continue;
                vg_sim_txn_t *tx = push_txn(sim);
                tx->ts_ms = day_ms + (int64_t)(t * 1000);
                tx->amount_cents = tx->base_cents = llround(amount * 100);
                tx->customer = c;
                tx->terminal = sim->cust_terms[cu->first_terminal + rng_below(&rt, cu->nterminals)];
                tx->day = (uint16_t)d;
                double u = rng_unit(&ra);
                tx->channel = u < cu->p_ecom               ? VG_SIM_ECOM
                              : u < cu->p_ecom + cu->p_atm ? VG_SIM_ATM
                                                           : VG_SIM_POS;
                tx->device = tx->channel == VG_SIM_ECOM ? 1 : 0;
            }
        }
        if (o->scenarios & VG_SIM_S_CARD_TESTING)
            card_testing_day(sim, &rc, d, day_ms);
        if (o->scenarios & VG_SIM_S_ACCOUNT_TAKEOVER)
            takeover_day(sim, &rk, d, day_ms, &near);
        qsort(sim->txns + sim->day_start[d], sim->ntxns - sim->day_start[d], sizeof(vg_sim_txn_t),
              txn_cmp);
    }
    sim->day_start[o->days] = sim->ntxns;
    free(near.v);
}

/* k distinct values below n into out (k <= n), by rejection: k is 2 or 3. */
static void sample_distinct(rng_t *r, uint32_t n, uint32_t k, uint32_t *out)
{
    for (uint32_t i = 0; i < k; i++) {
        uint32_t v;
        int dup;
        do {
            v = rng_below(r, n);
            dup = 0;
            for (uint32_t j = 0; j < i; j++)
                dup |= out[j] == v;
        } while (dup);
        out[i] = v;
    }
}

static void mark(vg_sim_txn_t *tx, vg_sim_scenario_t s)
{
    if (tx->scenario < s)
        tx->scenario = (uint8_t)s;
}

static void handbook_frauds(vg_sim_t *sim)
{
    const vg_sim_opts_t *o = &sim->opts;
    uint32_t D = o->days;
    rng_t r;
    rng_seed(&r, o->seed, S_FRAUD);
    sim->comp_terminals = vg_xmalloc((size_t)D * 2 * sizeof(uint32_t));
    sim->comp_customers = vg_xmalloc((size_t)D * 3 * sizeof(uint32_t));
    tlist_t hit = {0};
    uint32_t nterm = o->terminals < 2 ? o->terminals : 2;
    uint32_t ncust = o->customers < 3 ? o->customers : 3;
    for (uint32_t d = 0; d < D; d++) {
        /* 1: amount > 220 */
        for (size_t i = sim->day_start[d]; i < sim->day_start[d + 1]; i++)
            if (sim->txns[i].scenario < VG_SIM_CARD_TESTING && sim->txns[i].base_cents > 22000)
                mark(&sim->txns[i], VG_SIM_AMOUNT);
        /* 2: terminals compromised today, for today and the next 27 days */
        uint32_t *ct = sim->comp_terminals + (size_t)d * 2;
        sample_distinct(&r, o->terminals, nterm, ct);
        size_t end2 = sim->day_start[d + 28 < D ? d + 28 : D];
        for (size_t i = sim->day_start[d]; i < end2; i++) {
            vg_sim_txn_t *tx = &sim->txns[i];
            if (tx->scenario < VG_SIM_CARD_TESTING)
                for (uint32_t k = 0; k < nterm; k++)
                    if (tx->terminal == ct[k])
                        mark(tx, VG_SIM_COMPROMISED_TERMINAL);
        }
        /* 3: customers compromised today; a third of the union of their transactions in
         * today and the next 13 days, chosen at random, x5 */
        uint32_t *cc = sim->comp_customers + (size_t)d * 3;
        sample_distinct(&r, o->customers, ncust, cc);
        size_t end3 = sim->day_start[d + 14 < D ? d + 14 : D];
        hit.n = 0;
        for (size_t i = sim->day_start[d]; i < end3; i++) {
            const vg_sim_txn_t *tx = &sim->txns[i];
            if (tx->scenario < VG_SIM_CARD_TESTING)
                for (uint32_t k = 0; k < ncust; k++)
                    if (tx->customer == cc[k])
                        tlist_push(&hit, (uint32_t)(i - sim->day_start[d]));
        }
        size_t take = hit.n / 3;
        for (size_t k = 0; k < take; k++) { /* partial Fisher-Yates */
            size_t j = k + rng_below(&r, (uint32_t)(hit.n - k));
            uint32_t tmp = hit.v[k];
            hit.v[k] = hit.v[j];
            hit.v[j] = tmp;
            vg_sim_txn_t *tx = &sim->txns[sim->day_start[d] + hit.v[k]];
            tx->amount_cents *= 5;
            mark(tx, VG_SIM_COMPROMISED_CUSTOMER);
        }
    }
    free(hit.v);
}

static void finish(vg_sim_t *sim)
{
    vg_sim_stats_t *st = &sim->stats;
    st->transactions = sim->ntxns;
    sim->labels = vg_xmalloc((sim->ntxns ? sim->ntxns : 1) * sizeof(uint32_t));
    for (size_t i = 0; i < sim->ntxns; i++) {
        unsigned s = sim->txns[i].scenario;
        st->by_scenario[s]++;
        if (s)
            st->frauds++;
        if (s || sim->opts.label_legit) /* constant delay: label order is txn order */
            sim->labels[sim->nlabels++] = (uint32_t)i;
    }
    st->labels = sim->nlabels;
}

vg_sim_t *vg_sim_new(const vg_sim_opts_t *opts, char *errbuf, size_t errlen)
{
    const vg_sim_opts_t *o = opts;
    if (o->customers == 0 || o->terminals == 0 || o->days == 0) {
        vg_errf(errbuf, errlen, VG_ERR_CONFIG, "customers, terminals and days must be > 0");
        return NULL;
    }
    if (o->days > 65535 || o->customers > 10000000 || o->terminals > 10000000) {
        vg_errf(errbuf, errlen, VG_ERR_CONFIG,
                "at most 65535 days, 10,000,000 customers and 10,000,000 terminals");
        return NULL;
    }
    if (!(o->radius > 0) || !(o->radius <= 200)) {
        vg_errf(errbuf, errlen, VG_ERR_CONFIG, "radius must be in (0, 200], got %g", o->radius);
        return NULL;
    }
    if (!(o->card_testing_rate >= 0 && o->card_testing_rate <= 1e6) ||
        !(o->account_takeover_rate >= 0 && o->account_takeover_rate <= 1e6)) {
        vg_errf(errbuf, errlen, VG_ERR_CONFIG, "scenario rates must be in [0, 1e6] per day");
        return NULL;
    }
    if (o->label_delay_ms < 0) {
        vg_errf(errbuf, errlen, VG_ERR_CONFIG, "label delay must be >= 0");
        return NULL;
    }
    vg_sim_t *sim = vg_xcalloc(1, sizeof(*sim));
    sim->opts = *opts;
    vg_buf_init(&sim->frag);
    build_profiles(sim);
    generate(sim);
    if (sim->ntxns > UINT32_MAX) {
        vg_errf(errbuf, errlen, VG_ERR_CONFIG, "more than 2^32 transactions: use fewer days");
        vg_sim_free(sim);
        return NULL;
    }
    if (o->scenarios & VG_SIM_S_HANDBOOK)
        handbook_frauds(sim);
    finish(sim);
    build_fragments(sim);
    return sim;
}

void vg_sim_free(vg_sim_t *sim)
{
    if (!sim)
        return;
    free(sim->customers);
    free(sim->terminals);
    free(sim->cust_terms);
    free(sim->cell_start);
    free(sim->cell_terms);
    free(sim->txns);
    free(sim->day_start);
    free(sim->comp_terminals);
    free(sim->comp_customers);
    free(sim->labels);
    vg_buf_free(&sim->frag);
    free(sim->cust_off);
    free(sim->dev_off);
    free(sim->term_off);
    free(sim->pool_off);
    free(sim);
}

const vg_sim_opts_t *vg_sim_opts(const vg_sim_t *sim)
{
    return &sim->opts;
}

void vg_sim_stats(const vg_sim_t *sim, vg_sim_stats_t *stats)
{
    *stats = sim->stats;
}

size_t vg_sim_count(const vg_sim_t *sim)
{
    return sim->ntxns;
}

const vg_sim_txn_t *vg_sim_txn(const vg_sim_t *sim, size_t i)
{
    return i < sim->ntxns ? &sim->txns[i] : NULL;
}

const vg_sim_customer_t *vg_sim_customer(const vg_sim_t *sim, uint32_t customer)
{
    return customer < sim->opts.customers ? &sim->customers[customer] : NULL;
}

const vg_sim_terminal_t *vg_sim_terminal(const vg_sim_t *sim, uint32_t terminal)
{
    return terminal < sim->opts.terminals ? &sim->terminals[terminal] : NULL;
}

const uint32_t *vg_sim_customer_terminals(const vg_sim_t *sim, uint32_t customer, uint32_t *n)
{
    const vg_sim_customer_t *cu = vg_sim_customer(sim, customer);
    *n = cu ? cu->nterminals : 0;
    return cu ? sim->cust_terms + cu->first_terminal : NULL;
}

const uint32_t *vg_sim_compromised(const vg_sim_t *sim, vg_sim_scenario_t kind, uint32_t day,
                                   uint32_t *n)
{
    *n = 0;
    if (day >= sim->opts.days || !(sim->opts.scenarios & VG_SIM_S_HANDBOOK))
        return NULL;
    if (kind == VG_SIM_COMPROMISED_TERMINAL) {
        *n = sim->opts.terminals < 2 ? sim->opts.terminals : 2;
        return sim->comp_terminals + (size_t)day * 2;
    }
    if (kind == VG_SIM_COMPROMISED_CUSTOMER) {
        *n = sim->opts.customers < 3 ? sim->opts.customers : 3;
        return sim->comp_customers + (size_t)day * 3;
    }
    return NULL;
}

/* ---- encoding ---- */

static void put_txn_id(vg_buf_t *buf, size_t i)
{
    vg_buf_append(buf, "\"t", 2);
    put_uint(buf, i, 10);
    vg_buf_putc(buf, '"');
}

static void put_ts(vg_buf_t *buf, int64_t ms)
{
    char ts[32];
    vg_time_format(ms, ts);
    vg_buf_putc(buf, '"');
    vg_buf_append(buf, ts, 24);
    vg_buf_putc(buf, '"');
}

static void put_frag(vg_buf_t *buf, const vg_sim_t *sim, const uint32_t *off, size_t k)
{
    vg_buf_append(buf, sim->frag.data + off[k], off[k + 1] - off[k]);
}

void vg_sim_encode_txn(const vg_sim_t *sim, size_t i, vg_buf_t *buf)
{
    const vg_sim_txn_t *tx = &sim->txns[i];
    static const char *const channels[] = {"\"pos\"", "\"ecom\"", "\"atm\""};
    vg_buf_append(buf, "{\"txn_id\":", 10);
    put_txn_id(buf, i);
    vg_buf_append(buf, ",\"ts\":", 6);
    put_ts(buf, tx->ts_ms);
    put_frag(buf, sim, sim->cust_off, tx->customer);
    /* cents as a fixed two-decimal JSON number: exact, and no double round trip */
    vg_buf_append(buf, ",\"amount\":", 10);
    put_uint(buf, (uint64_t)(tx->amount_cents / 100), 1);
    vg_buf_putc(buf, '.');
    put_uint(buf, (uint64_t)(tx->amount_cents % 100), 2);
    vg_buf_append(buf, ",\"currency\":\"EUR\",\"channel\":", 28);
    vg_buf_puts(buf, channels[tx->channel]);
    if (tx->device == 1)
        put_frag(buf, sim, sim->dev_off, tx->customer);
    else if (tx->device >= 2)
        put_frag(buf, sim, sim->pool_off, tx->device - 2);
    put_frag(buf, sim, sim->term_off, tx->terminal);
}

int vg_sim_has_label(const vg_sim_t *sim, size_t i)
{
    return i < sim->ntxns && (sim->txns[i].scenario || sim->opts.label_legit);
}

void vg_sim_encode_label(const vg_sim_t *sim, size_t i, vg_buf_t *buf)
{
    const vg_sim_txn_t *tx = &sim->txns[i];
    vg_buf_append(buf, "{\"txn_id\":", 10);
    put_txn_id(buf, i);
    vg_buf_puts(buf,
                tx->scenario ? ",\"label\":\"fraud\",\"ts\":" : ",\"label\":\"legit\",\"ts\":");
    put_ts(buf, tx->ts_ms + sim->opts.label_delay_ms);
    vg_buf_puts(buf, ",\"source\":\"simulator\"");
    if (tx->scenario) {
        vg_buf_puts(buf, ",\"scenario\":\"");
        vg_buf_puts(buf, scenario_names[tx->scenario]);
        vg_buf_putc(buf, '"');
    }
    vg_buf_append(buf, "}\n", 2);
}

void vg_sim_rewind(vg_sim_t *sim)
{
    sim->next_txn = sim->next_label = 0;
}

int vg_sim_next(vg_sim_t *sim, vg_sim_event_t *ev)
{
    int have_t = sim->next_txn < sim->ntxns, have_l = sim->next_label < sim->nlabels;
    if (!have_t && !have_l)
        return 0;
    int64_t lts = 0;
    if (have_l)
        lts = sim->txns[sim->labels[sim->next_label]].ts_ms + sim->opts.label_delay_ms;
    if (have_t && (!have_l || sim->txns[sim->next_txn].ts_ms <= lts)) {
        ev->is_label = 0;
        ev->txn = sim->next_txn++;
        ev->ts_ms = sim->txns[ev->txn].ts_ms;
    } else {
        ev->is_label = 1;
        ev->txn = sim->labels[sim->next_label++];
        ev->ts_ms = lts;
    }
    return 1;
}

/* ---- files ---- */

static vg_err_t write_all(FILE *f, vg_buf_t *buf, const char *path, char *errbuf, size_t errlen)
{
    if (buf->len && fwrite(buf->data, 1, buf->len, f) != buf->len)
        return vg_errf(errbuf, errlen, VG_ERR_IO, "write %s: %s", path, strerror(errno));
    vg_buf_reset(buf);
    return VG_OK;
}

vg_err_t vg_sim_write_files(const vg_sim_t *sim, const char *dir, uint64_t *bytes, char *errbuf,
                            size_t errlen)
{
    char path[2][4096];
    FILE *f[2] = {NULL, NULL};
    vg_buf_t buf;
    vg_err_t err = VG_OK;
    uint64_t total = 0;
    vg_buf_init(&buf);
    snprintf(path[0], sizeof(path[0]), "%s/transactions.jsonl", dir);
    snprintf(path[1], sizeof(path[1]), "%s/labels.jsonl", dir);
    for (int k = 0; k < 2; k++) {
        f[k] = fopen(path[k], "w");
        if (!f[k]) {
            err = vg_errf(errbuf, errlen, VG_ERR_IO, "cannot create %s: %s", path[k],
                          strerror(errno));
            goto out;
        }
    }
    for (size_t i = 0; i < sim->ntxns; i++) {
        vg_sim_encode_txn(sim, i, &buf);
        if (buf.len >= (1u << 20)) {
            total += buf.len;
            if ((err = write_all(f[0], &buf, path[0], errbuf, errlen)))
                goto out;
        }
    }
    total += buf.len;
    if ((err = write_all(f[0], &buf, path[0], errbuf, errlen)))
        goto out;
    for (size_t k = 0; k < sim->nlabels; k++) {
        vg_sim_encode_label(sim, sim->labels[k], &buf);
        if (buf.len >= (1u << 20)) {
            total += buf.len;
            if ((err = write_all(f[1], &buf, path[1], errbuf, errlen)))
                goto out;
        }
    }
    total += buf.len;
    err = write_all(f[1], &buf, path[1], errbuf, errlen);
out:
    for (int k = 0; k < 2; k++)
        if (f[k] && fclose(f[k]) != 0 && !err)
            err = vg_errf(errbuf, errlen, VG_ERR_IO, "close %s: %s", path[k], strerror(errno));
    vg_buf_free(&buf);
    if (bytes)
        *bytes = total;
    return err;
}
