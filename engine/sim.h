/*
 * sim.h - the transaction simulator as a library: the generative process of the Fraud
 * Detection Handbook (Le Borgne et al., chapter 3, "Simulated dataset"), plus two fraud
 * scenarios the handbook lacks (card testing, account takeover).
 *
 * vg_sim_new() generates the whole dataset in memory (48 bytes per transaction, 85 MB
 * for the default 1.75M, plus growth slack), because the handbook's third scenario picks a
 * third of a customer's transactions over the next 14 days, which needs them all at hand.
 * After that, transactions are read in time order by index, and transactions and labels
 * interleaved in time order through vg_sim_next().
 *
 * Guarantees:
 *  - the same options (seed included) give the same records and the same bytes, on any
 *    machine with the same libm (log/exp/sqrt feed the normal and Poisson draws): the
 *    random generator is vigil's own (xoshiro256** seeded by splitmix64), not libc's;
 *  - the handbook's transactions and frauds do not depend on whether the extra scenarios
 *    are on: each part of the process draws from its own random stream;
 *  - transactions are in (ts, then generation order) order, and txn_id is the position in
 *    that order, so ties are broken the same way on every run;
 *  - labels are in label-ts order; a label's ts is its transaction's ts + label_delay_ms.
 */
#ifndef VG_SIM_H
#define VG_SIM_H

#include "engine/common.h"

/* Fraud scenarios. 0 = legitimate. The handbook's three, then vigil's extras. */
typedef enum vg_sim_scenario {
    VG_SIM_LEGIT = 0,
    VG_SIM_AMOUNT = 1,               /* handbook 1: amount > 220 */
    VG_SIM_COMPROMISED_TERMINAL = 2, /* handbook 2: all of a terminal's txns for 28 days */
    VG_SIM_COMPROMISED_CUSTOMER = 3, /* handbook 3: a third of a customer's txns x5, 14 days */
    VG_SIM_CARD_TESTING = 4,         /* burst of tiny ecom payments, then a large one */
    VG_SIM_ACCOUNT_TAKEOVER = 5,     /* new device, distant location, high amounts */
    VG_SIM_NSCENARIOS
} vg_sim_scenario_t;

/* Bits of vg_sim_opts_t.scenarios. */
#define VG_SIM_S_HANDBOOK         (1u << 0)
#define VG_SIM_S_CARD_TESTING     (1u << 1)
#define VG_SIM_S_ACCOUNT_TAKEOVER (1u << 2)

/* Channels. */
typedef enum vg_sim_channel {
    VG_SIM_POS = 0,
    VG_SIM_ECOM = 1,
    VG_SIM_ATM = 2,
} vg_sim_channel_t;

typedef struct vg_sim_opts {
    uint32_t customers;           /* default 5000 */
    uint32_t terminals;           /* default 10000 */
    uint32_t days;                /* default 183 */
    int64_t start_ms;             /* midnight UTC of the first day; default 2018-04-01 */
    uint64_t seed;                /* default 1 */
    int64_t label_delay_ms;       /* default 7 days */
    double radius;                /* terminals a customer uses: within this distance; default 5 */
    unsigned scenarios;           /* VG_SIM_S_* bits; default VG_SIM_S_HANDBOOK */
    double card_testing_rate;     /* card-testing incidents per day (Poisson mean); default 2 */
    double account_takeover_rate; /* account takeovers per day (Poisson mean); default 1 */
    int label_legit;              /* also emit a "legit" label for every other transaction */
} vg_sim_opts_t;

/* The defaults above. */
vg_sim_opts_t vg_sim_opts_default(void);

/*
 * Parses a scenario list "handbook,card_testing,account_takeover" (any subset, any order;
 * "all" for every one, "none" for no fraud at all) into VG_SIM_S_* bits. VG_ERR_CONFIG with
 * a message naming the unknown scenario otherwise.
 */
vg_err_t vg_sim_parse_scenarios(const char *list, unsigned *bits, char *errbuf, size_t errlen);

/* The scenario's name as it appears in labels ("compromised_terminal"); "legit" for 0. */
const char *vg_sim_scenario_name(vg_sim_scenario_t scenario);
/* "pos", "ecom", "atm". */
const char *vg_sim_channel_name(vg_sim_channel_t channel);

/* One generated transaction. */
typedef struct vg_sim_txn {
    int64_t ts_ms;        /* event time */
    int64_t amount_cents; /* final amount (after a scenario-3 x5) */
    int64_t base_cents;   /* amount as first drawn, before any scenario changed it */
    uint32_t customer;    /* index; the card is the customer's one card */
    uint32_t terminal;    /* index */
    uint32_t gen;         /* generation order, the last tie-breaker of the time order */
    uint16_t day;         /* day index from start_ms */
    uint8_t channel;      /* vg_sim_channel_t */
    uint8_t scenario;     /* vg_sim_scenario_t; non-zero means fraud */
    uint16_t device;      /* 0 none (card present), 1 the customer's home device,
                             2 + k the fraudsters' device k (with its IP k) */
} vg_sim_txn_t;

typedef struct vg_sim_customer {
    double x, y;             /* home, on the [0, 100]^2 grid */
    double mean_amount;      /* Uniform(5, 100) */
    double std_amount;       /* mean / 2 */
    double mean_per_day;     /* Uniform(0, 4) */
    double p_ecom, p_atm;    /* channel mix; the rest is pos */
    uint32_t first_terminal; /* this customer's terminals within radius: */
    uint32_t nterminals;     /* vg_sim_t's list [first_terminal, first_terminal + n) */
} vg_sim_customer_t;

typedef struct vg_sim_terminal {
    double x, y;
} vg_sim_terminal_t;

typedef struct vg_sim_stats {
    uint64_t transactions;
    uint64_t frauds;
    uint64_t labels;
    uint64_t by_scenario[VG_SIM_NSCENARIOS]; /* [0] = legitimate transactions */
    uint64_t customers_without_terminals;
} vg_sim_stats_t;

typedef struct vg_sim vg_sim_t;

/*
 * Generates the dataset described by opts (copied). NULL with a message in errbuf when an
 * option is out of range (zero customers, terminals or days, radius <= 0, negative rates,
 * more than 65535 days).
 */
vg_sim_t *vg_sim_new(const vg_sim_opts_t *opts, char *errbuf, size_t errlen);
void vg_sim_free(vg_sim_t *sim);

const vg_sim_opts_t *vg_sim_opts(const vg_sim_t *sim);
void vg_sim_stats(const vg_sim_t *sim, vg_sim_stats_t *stats);

/* Transactions in time order; index i is also the txn_id. Valid until vg_sim_free(). */
size_t vg_sim_count(const vg_sim_t *sim);
const vg_sim_txn_t *vg_sim_txn(const vg_sim_t *sim, size_t i);
const vg_sim_customer_t *vg_sim_customer(const vg_sim_t *sim, uint32_t customer);
const vg_sim_terminal_t *vg_sim_terminal(const vg_sim_t *sim, uint32_t terminal);
/* The customer's terminals: *n entries, valid until vg_sim_free(). */
const uint32_t *vg_sim_customer_terminals(const vg_sim_t *sim, uint32_t customer, uint32_t *n);

/*
 * The terminals (kind VG_SIM_COMPROMISED_TERMINAL, 2 a day) or customers
 * (VG_SIM_COMPROMISED_CUSTOMER, 3 a day) that became compromised on `day`; *n is 0 when the
 * handbook scenarios are off. Valid until vg_sim_free(). For tests and demos.
 */
const uint32_t *vg_sim_compromised(const vg_sim_t *sim, vg_sim_scenario_t kind, uint32_t day,
                                   uint32_t *n);

/* Grid position to the lat/lon box documented in docs/simulator.md (1 grid unit = 10 km). */
void vg_sim_grid_to_latlon(double x, double y, double *lat, double *lon);

/*
 * Appends the transaction's JSON line (newline included) / its label's JSON line. A label
 * line is only meaningful for a transaction vg_sim_has_label() accepts.
 */
void vg_sim_encode_txn(const vg_sim_t *sim, size_t i, vg_buf_t *buf);
int vg_sim_has_label(const vg_sim_t *sim, size_t i);
void vg_sim_encode_label(const vg_sim_t *sim, size_t i, vg_buf_t *buf);

/* The Kafka keys: "card-0000123" for a customer's card, "t0000000042" for txn_id i. */
void vg_sim_card_id(uint32_t customer, char out[32]);
void vg_sim_txn_id(size_t i, char out[32]);

/* One step of the interleaved stream: a transaction, or a label becoming known. */
typedef struct vg_sim_event {
    int is_label;
    size_t txn;    /* index of the transaction (or of the labelled transaction) */
    int64_t ts_ms; /* the transaction's ts, or the label's */
} vg_sim_event_t;

/* Restarts the interleaved stream from the beginning. */
void vg_sim_rewind(vg_sim_t *sim);
/*
 * The next event in time order (a transaction before a label at the same ms). Returns 1
 * and fills *ev, or 0 when both streams are done.
 */
int vg_sim_next(vg_sim_t *sim, vg_sim_event_t *ev);

/*
 * Writes DIR/transactions.jsonl and DIR/labels.jsonl (DIR must exist). VG_ERR_IO with the
 * path and errno text on failure. *bytes (may be NULL) receives the bytes written.
 */
vg_err_t vg_sim_write_files(const vg_sim_t *sim, const char *dir, uint64_t *bytes, char *errbuf,
                            size_t errlen);

#endif
