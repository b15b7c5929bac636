/* driver.c - the C port behind the radam-ref process protocol, version 1.
 *
 *     cc -std=c99 -O2 -ffp-contract=off radam.c driver.c -lm -o radam-driver
 *     radam-ref conformance 'exec:./radam-driver'
 *
 * Reads one JSON request per line on stdin, writes one JSON reply per line on
 * stdout (schema: radam_protocol_v1.json, walkthrough: docs/porting.md).  The
 * JSON reader below handles what the protocol needs (objects, arrays, strings
 * without non-ASCII escapes, numbers, true/false/null); it lives in the driver
 * only, the library (radam.c) knows nothing about JSON.  Floats are hex strings:
 * strtod reads them, printf's %a writes them, exactly.
 */
#include "radam.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------------ */
/* JSON values                                                               */
/* ------------------------------------------------------------------------ */

enum { J_NULL, J_BOOL, J_NUM, J_STR, J_ARR, J_OBJ };

typedef struct jv {
    int type;
    int boolean;
    double num;
    char *str;
    struct jv *items; /* J_ARR and J_OBJ (values) */
    char **keys;      /* J_OBJ */
    int n;
} jv;

typedef struct { const char *p; int ok; } jparser;

static void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p) {
        fputs("radam-driver: out of memory\n", stderr);
        exit(70);
    }
    return p;
}

static void *xrealloc(void *q, size_t n)
{
    void *p = realloc(q, n ? n : 1);
    if (!p) {
        fputs("radam-driver: out of memory\n", stderr);
        exit(70);
    }
    return p;
}

static void j_free(jv *v)
{
    int i;
    if (v->type == J_STR) free(v->str);
    if (v->type == J_ARR || v->type == J_OBJ) {
        for (i = 0; i < v->n; ++i) {
            j_free(&v->items[i]);
            if (v->type == J_OBJ) free(v->keys[i]);
        }
        free(v->items);
        free(v->keys);
    }
    v->type = J_NULL;
}

static void j_ws(jparser *ps)
{
    while (*ps->p == ' ' || *ps->p == '\t' || *ps->p == '\r' || *ps->p == '\n') ps->p++;
}

static char *j_string(jparser *ps)
{
    size_t cap = 16, len = 0;
    char *out;
    if (*ps->p != '"') {
        ps->ok = 0;
        return NULL;
    }
    ps->p++;
    out = (char *)xmalloc(cap);
    while (*ps->p && *ps->p != '"') {
        char ch = *ps->p++;
        if (ch == '\\') {
            char e = *ps->p++;
            switch (e) {
            case '"': ch = '"'; break;
            case '\\': ch = '\\'; break;
            case '/': ch = '/'; break;
            case 'b': ch = '\b'; break;
            case 'f': ch = '\f'; break;
            case 'n': ch = '\n'; break;
            case 'r': ch = '\r'; break;
            case 't': ch = '\t'; break;
            case 'u': {
                int k;
                for (k = 0; k < 4; ++k) {
                    if (!ps->p[k]) {
                        ps->ok = 0;
                        free(out);
                        return NULL;
                    }
                }
                ps->p += 4;
                ch = '?'; /* the protocol's strings are ASCII */
                break;
            }
            default:
                ps->ok = 0;
                free(out);
                return NULL;
            }
        }
        if (len + 2 > cap) out = (char *)xrealloc(out, cap *= 2);
        out[len++] = ch;
    }
    if (*ps->p != '"') {
        ps->ok = 0;
        free(out);
        return NULL;
    }
    ps->p++;
    out[len] = '\0';
    return out;
}

static void j_value(jparser *ps, jv *v, int depth)
{
    memset(v, 0, sizeof *v);
    j_ws(ps);
    if (depth > 64) {
        ps->ok = 0;
        return;
    }
    if (*ps->p == '{' || *ps->p == '[') {
        int obj = *ps->p == '{';
        int cap = 4;
        char close = obj ? '}' : ']';
        v->type = obj ? J_OBJ : J_ARR;
        v->items = (jv *)xmalloc(sizeof(jv) * (size_t)cap);
        v->keys = obj ? (char **)xmalloc(sizeof(char *) * (size_t)cap) : NULL;
        ps->p++;
        j_ws(ps);
        if (*ps->p == close) {
            ps->p++;
            return;
        }
        for (;;) {
            char *key = NULL;
            if (v->n == cap) {
                cap *= 2;
                v->items = (jv *)xrealloc(v->items, sizeof(jv) * (size_t)cap);
                if (obj) v->keys = (char **)xrealloc(v->keys, sizeof(char *) * (size_t)cap);
            }
            if (obj) {
                j_ws(ps);
                key = j_string(ps);
                if (!ps->ok) return;
                j_ws(ps);
                if (*ps->p != ':') {
                    free(key);
                    ps->ok = 0;
                    return;
                }
                ps->p++;
                v->keys[v->n] = key;
            }
            j_value(ps, &v->items[v->n], depth + 1);
            v->n++;
            if (!ps->ok) return;
            j_ws(ps);
            if (*ps->p == ',') {
                ps->p++;
                continue;
            }
            if (*ps->p == close) {
                ps->p++;
                return;
            }
            ps->ok = 0;
            return;
        }
    }
    if (*ps->p == '"') {
        v->type = J_STR;
        v->str = j_string(ps);
        if (!v->str) v->type = J_NULL;
        return;
    }
    if (strncmp(ps->p, "true", 4) == 0 || strncmp(ps->p, "false", 5) == 0) {
        v->type = J_BOOL;
        v->boolean = ps->p[0] == 't';
        ps->p += v->boolean ? 4 : 5;
        return;
    }
    if (strncmp(ps->p, "null", 4) == 0) {
        ps->p += 4;
        return;
    }
    if (*ps->p == '-' || (*ps->p >= '0' && *ps->p <= '9')) {
        char *end;
        v->type = J_NUM;
        v->num = strtod(ps->p, &end);
        if (end == ps->p) ps->ok = 0;
        ps->p = end;
        return;
    }
    ps->ok = 0;
}

static const jv *j_get(const jv *obj, const char *key)
{
    int i;
    if (!obj || obj->type != J_OBJ) return NULL;
    for (i = 0; i < obj->n; ++i)
        if (strcmp(obj->keys[i], key) == 0) return &obj->items[i];
    return NULL;
}

/* ------------------------------------------------------------------------ */
/* Output                                                                    */
/* ------------------------------------------------------------------------ */

static char *out_buf;
static size_t out_len, out_cap;

static void out_raw(const char *s, size_t n)
{
    if (out_len + n + 1 > out_cap) {
        while (out_len + n + 1 > out_cap) out_cap = out_cap ? out_cap * 2 : 4096;
        out_buf = (char *)xrealloc(out_buf, out_cap);
    }
    memcpy(out_buf + out_len, s, n);
    out_len += n;
}

static void out(const char *s) { out_raw(s, strlen(s)); }

static void outf(const char *fmt, ...)
{
    char tmp[128];
    int n;
    va_list ap;
    va_start(ap, fmt);
    n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n < 0) n = 0;
    if ((size_t)n >= sizeof tmp) n = (int)sizeof tmp - 1; /* never: callers print short numbers */
    out_raw(tmp, (size_t)n);
}

static void out_hex(double x)
{
    if (x != x) out("\"nan\"");
    else if (x - x != 0.0) out(x > 0 ? "\"inf\"" : "\"-inf\"");
    else outf("\"%a\"", x);
}

/* A JSON string of ASCII: control characters escaped, any other byte (a
 * request may hold invalid UTF-8, echoed in an error message) written as '?',
 * so that every reply is valid UTF-8. */
static void out_string(const char *s)
{
    out("\"");
    for (; *s; ++s) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\') outf("\\%c", *s);
        else if (ch < 0x20) outf("\\u%04x", (unsigned)ch);
        else if (ch >= 0x7f) out("?");
        else out_raw(s, 1);
    }
    out("\"");
}

static void flush_line(void)
{
    out_raw("\n", 1);
    fwrite(out_buf, 1, out_len, stdout);
    fflush(stdout);
    out_len = 0;
}

/* An integer JSON number that a double holds exactly (|x| <= 2^53). */
static int is_int(const jv *v)
{
    return v && v->type == J_NUM && v->num == floor(v->num) && fabs(v->num) <= 9007199254740992.0;
}

static void reply_id(const jv *id)
{
    out("{\"id\":");
    if (is_int(id)) outf("%.0f", id->num);
    else out("null");
}

static void reply_error(const jv *id, int code, const char *message)
{
    out_len = 0;
    reply_id(id);
    outf(",\"error\":{\"code\":%d,\"message\":", code);
    out_string(message);
    out("}}");
    flush_line();
}

/* ------------------------------------------------------------------------ */
/* Sessions                                                                  */
/* ------------------------------------------------------------------------ */

#define MAX_NDIM 16

typedef struct {
    int ndim;
    long shape[MAX_NDIM];
    int size;
    long count;          /* steps this parameter has taken */
    double *theta, *m, *v, *grad;
    float *theta_f, *m_f, *v_f, *grad_f;
    int had_grad;        /* the last step gave it a gradient */
} param;

typedef struct {
    radam_config cfg;
    int nparams;
    param *params;
} group;

typedef struct {
    int live;
    int f32;
    long steps;
    int ngroups;
    group *groups;
} session;

static session *sessions;
static int nsessions;
static long total_sessions, total_steps, total_groups;

/* Errors raised while reading a request: code and message for the reply. */
static int err_code;
static char err_msg[256];

static int fail(int code, const char *fmt, ...)
{
    va_list ap;
    err_code = code;
    va_start(ap, fmt);
    vsnprintf(err_msg, sizeof err_msg, fmt, ap);
    va_end(ap);
    return -1;
}

#define INVALID (-32602)
#define UNSUPPORTED 1
#define STEP_FAILED 2

static int is_hex(const char *s)
{
    /* -?0x<hex>[.<hex>]p[+-]<dec> | inf | -inf | nan */
    if (strcmp(s, "nan") == 0 || strcmp(s, "inf") == 0 || strcmp(s, "-inf") == 0) return 1;
    if (*s == '-') ++s;
    if (s[0] != '0' || (s[1] != 'x' && s[1] != 'X')) return 0;
    return strchr(s, 'p') != NULL || strchr(s, 'P') != NULL;
}

static int get_hex(const jv *v, const char *what, double *x)
{
    char *end;
    if (!v || v->type != J_STR || !is_hex(v->str)) return fail(INVALID, "%s must be a hex float string", what);
    *x = strtod(v->str, &end);
    if (*end) return fail(INVALID, "%s: bad hex float", what);
    /* A finite hex float beyond double's range is refused (Python's float.fromhex
     * raises too), not read as infinity; "inf" itself is is_hex's literal. */
    if (*x - *x != 0.0 && *x == *x && strstr(v->str, "inf") == NULL)
        return fail(INVALID, "%s: hex float out of range", what);
    return 0;
}

static int get_enum(const jv *v, const char *what, const char *const *names, int n, int *out_value)
{
    int i;
    if (!v || v->type != J_STR) return fail(INVALID, "config.%s must be a string", what);
    for (i = 0; i < n; ++i)
        if (strcmp(v->str, names[i]) == 0) {
            *out_value = i;
            return 0;
        }
    return fail(UNSUPPORTED, "config.%s = %.60s is not supported", what, v->str);
}

static int get_bool(const jv *v, const char *what, int *b)
{
    if (!v || v->type != J_BOOL) return fail(INVALID, "config.%s must be a boolean", what);
    *b = v->boolean;
    return 0;
}

static int parse_config(const jv *o, radam_config *c)
{
    static const char *const comparisons[] = {">", ">="};
    static const char *const placements[] = {"before_bias_correction", "after_bias_correction"};
    static const char *const modes[] = {"none", "l2", "decoupled", "decoupled_moving"};
    static const char *const forms[] = {"subtract", "multiply"};
    static const char *const befores[] = {"sgd_momentum", "none"};
    const jv *betas = j_get(o, "betas");
    if (!o || o->type != J_OBJ) return fail(INVALID, "config must be an object");
    if (!betas || betas->type != J_ARR || betas->n != 2) return fail(INVALID, "config.betas must be a pair");
    if (get_hex(j_get(o, "lr"), "config.lr", &c->lr) || get_hex(&betas->items[0], "config.betas[0]", &c->beta1)
        || get_hex(&betas->items[1], "config.betas[1]", &c->beta2) || get_hex(j_get(o, "eps"), "config.eps", &c->eps)
        || get_hex(j_get(o, "weight_decay"), "config.weight_decay", &c->weight_decay)
        || get_hex(j_get(o, "threshold"), "config.threshold", &c->threshold)
        || get_hex(j_get(o, "eps_root"), "config.eps_root", &c->eps_root)
        || get_enum(j_get(o, "comparison"), "comparison", comparisons, 2, &c->comparison)
        || get_enum(j_get(o, "eps_placement"), "eps_placement", placements, 2, &c->eps_placement)
        || get_enum(j_get(o, "weight_decay_mode"), "weight_decay_mode", modes, 4, &c->weight_decay_mode)
        || get_enum(j_get(o, "decay_form"), "decay_form", forms, 2, &c->decay_form)
        || get_enum(j_get(o, "before_rectification"), "before_rectification", befores, 2,
                    &c->before_rectification)
        || get_bool(j_get(o, "nesterov"), "nesterov", &c->nesterov)
        || get_bool(j_get(o, "maximize"), "maximize", &c->maximize))
        return -1;
    if (radam_config_check(c) != RADAM_OK) return fail(INVALID, "config out of range");
    return 0;
}

/* Read an array {"shape": [...], "data": [...]} into dst (size elements);
 * with shape_of != NULL, record the shape there. */
static int parse_array(const jv *a, const char *what, param *shape_of, const param *expect, double *dst)
{
    const jv *shape = j_get(a, "shape"), *data = j_get(a, "data"), *cplx = j_get(a, "complex");
    long size = 1;
    int i, empty = 0;
    if (!a || a->type != J_OBJ || !shape || shape->type != J_ARR || !data || data->type != J_ARR)
        return fail(INVALID, "%s must be {shape, data}", what);
    if (cplx && cplx->type == J_BOOL && cplx->boolean) return fail(UNSUPPORTED, "complex arrays");
    if (shape->n > MAX_NDIM) return fail(UNSUPPORTED, "%s has more than %d dimensions", what, MAX_NDIM);
    /* Each extent an integer; the product is compared with data->n as it
     * grows (every extent >= 1 then), so it never overflows. */
    for (i = 0; i < shape->n; ++i) {
        const jv *d = &shape->items[i];
        if (!is_int(d) || d->num < 0 || d->num > 2147483647.0)
            return fail(INVALID, "%s: shape must hold integers in [0, 2^31)", what);
        if (d->num == 0) empty = 1;
    }
    for (i = 0; i < shape->n && !empty; ++i) {
        size *= (long)shape->items[i].num;
        if (size > data->n) return fail(INVALID, "%s: shape larger than its %d values", what, data->n);
    }
    if (empty) size = 0;
    if (size != data->n) return fail(INVALID, "%s: %d values for shape of size %ld", what, data->n, size);
    if (expect) {
        if (expect->ndim != shape->n) return fail(INVALID, "%s: shape differs from the parameter's", what);
        for (i = 0; i < shape->n; ++i)
            if (expect->shape[i] != (long)shape->items[i].num)
                return fail(INVALID, "%s: shape differs from the parameter's", what);
    }
    if (shape_of) {
        shape_of->ndim = shape->n;
        for (i = 0; i < shape->n; ++i) shape_of->shape[i] = (long)shape->items[i].num;
        shape_of->size = (int)size;
        return 0;
    }
    for (i = 0; i < data->n; ++i)
        if (get_hex(&data->items[i], what, &dst[i])) return -1;
    return 0;
}

static void free_group(group *g)
{
    int i;
    for (i = 0; i < g->nparams; ++i) {
        param *p = &g->params[i];
        free(p->theta); free(p->m); free(p->v); free(p->grad);
        free(p->theta_f); free(p->m_f); free(p->v_f); free(p->grad_f);
    }
    free(g->params);
    g->params = NULL;
    g->nparams = 0;
}

static int parse_group(const jv *o, int f32, group *g)
{
    const jv *params = j_get(o, "params");
    int i, j;
    memset(g, 0, sizeof *g);
    if (!o || o->type != J_OBJ) return fail(INVALID, "group must be an object");
    if (parse_config(j_get(o, "config"), &g->cfg)) return -1;
    if (!params || params->type != J_ARR) return fail(INVALID, "group.params must be an array");
    g->params = (param *)xmalloc(sizeof(param) * (size_t)(params->n ? params->n : 1));
    memset(g->params, 0, sizeof(param) * (size_t)(params->n ? params->n : 1));
    for (i = 0; i < params->n; ++i) {
        param *p = &g->params[i];
        size_t n;
        g->nparams = i + 1;
        if (parse_array(&params->items[i], "group.params[]", p, NULL, NULL)) return -1;
        n = (size_t)(p->size ? p->size : 1);
        p->theta = (double *)xmalloc(n * sizeof(double));
        p->m = (double *)xmalloc(n * sizeof(double));
        p->v = (double *)xmalloc(n * sizeof(double));
        p->grad = (double *)xmalloc(n * sizeof(double));
        p->theta_f = (float *)xmalloc(n * sizeof(float));
        p->m_f = (float *)xmalloc(n * sizeof(float));
        p->v_f = (float *)xmalloc(n * sizeof(float));
        p->grad_f = (float *)xmalloc(n * sizeof(float));
        if (parse_array(&params->items[i], "group.params[]", NULL, NULL, p->theta)) return -1;
        for (j = 0; j < p->size; ++j) {
            p->m[j] = p->v[j] = 0.0;
            p->m_f[j] = p->v_f[j] = 0.0f;
            p->theta_f[j] = (float)p->theta[j];
            if (f32) p->theta[j] = (double)p->theta_f[j];
        }
    }
    return 0;
}

static session *get_session(const jv *params)
{
    const jv *id = j_get(params, "session");
    int k;
    if (!is_int(id) || id->num < 0 || id->num >= (double)nsessions) {
        fail(INVALID, "params.session must be the number of an open session");
        return NULL;
    }
    k = (int)id->num;
    if (!sessions[k].live) {
        fail(INVALID, "no open session %d", k);
        return NULL;
    }
    return &sessions[k];
}

static void out_array(const param *p, int f32, int which)
{
    int i;
    out("{\"shape\":[");
    for (i = 0; i < p->ndim; ++i) outf(i ? ",%ld" : "%ld", p->shape[i]);
    out("],\"data\":[");
    for (i = 0; i < p->size; ++i) {
        double x;
        if (which == 0) x = f32 ? (double)p->theta_f[i] : p->theta[i];
        else if (which == 1) x = f32 ? (double)p->m_f[i] : p->m[i];
        else if (which == 2) x = f32 ? (double)p->v_f[i] : p->v[i];
        else x = f32 ? (double)p->grad_f[i] : p->grad[i];
        if (i) out(",");
        out_hex(x);
    }
    out("]}");
}

/* ------------------------------------------------------------------------ */
/* Methods                                                                   */
/* ------------------------------------------------------------------------ */

static int m_hello(const jv *params)
{
    const jv *proto = j_get(params, "protocol");
    if (!proto || proto->type != J_NUM || proto->num != 1.0)
        return fail(INVALID, "this driver speaks protocol 1");
    out(",\"result\":{\"protocol\":1,\"name\":\"radam-c\",\"version\":\"" RADAM_VERSION "\",\"capabilities\":{"
        "\"profile\":\"paper\",\"profiles\":[\"paper\",\"authors\",\"torch\",\"torch_decoupled\",\"optax\","
        "\"tf_addons\",\"timm\"],\"dtypes\":[\"float64\",\"float32\"],"
        "\"options\":[\"threshold\",\"comparison\",\"eps_placement\",\"eps_root\",\"decay_form\","
        "\"before_rectification\",\"nesterov\",\"maximize\"],"
        "\"weight_decay_modes\":[\"none\",\"l2\",\"decoupled\",\"decoupled_moving\"],"
        "\"param_groups\":true,\"add_group\":true,\"save_state\":true,\"grad_none\":true,\"inputs\":true}}");
    return 0;
}

static int m_open(const jv *params)
{
    const jv *dtype = j_get(params, "dtype"), *groups = j_get(params, "groups");
    session s;
    int i, k;
    memset(&s, 0, sizeof s);
    if (!dtype || dtype->type != J_STR) return fail(INVALID, "params.dtype must be a string");
    if (strcmp(dtype->str, "float64") == 0) s.f32 = 0;
    else if (strcmp(dtype->str, "float32") == 0) s.f32 = 1;
    else return fail(UNSUPPORTED, "dtype %.40s", dtype->str);
    if (!groups || groups->type != J_ARR || groups->n < 1) return fail(INVALID, "params.groups must be a non-empty array");
    s.groups = (group *)xmalloc(sizeof(group) * (size_t)groups->n);
    for (i = 0; i < groups->n; ++i) {
        s.ngroups = i + 1;
        if (parse_group(&groups->items[i], s.f32, &s.groups[i])) {
            for (k = 0; k < s.ngroups; ++k) free_group(&s.groups[k]);
            free(s.groups);
            return -1;
        }
    }
    s.live = 1;
    sessions = (session *)xrealloc(sessions, sizeof(session) * (size_t)(nsessions + 1));
    sessions[nsessions] = s;
    total_sessions++;
    total_groups += s.ngroups;
    outf(",\"result\":{\"session\":%d}", nsessions);
    nsessions++;
    return 0;
}

static int m_step(const jv *params)
{
    session *s = get_session(params);
    const jv *grads = j_get(params, "grads");
    int gi, pi, j;
    if (!s) return -1;
    if (!grads || grads->type != J_ARR || grads->n != s->ngroups)
        return fail(INVALID, "params.grads must have one list per group (%d)", s->ngroups);
    /* Read and check every gradient before changing anything. */
    for (gi = 0; gi < s->ngroups; ++gi) {
        const jv *row = &grads->items[gi];
        group *g = &s->groups[gi];
        if (row->type != J_ARR || row->n != g->nparams)
            return fail(INVALID, "grads[%d] must have %d entries", gi, g->nparams);
        for (pi = 0; pi < g->nparams; ++pi) {
            param *p = &g->params[pi];
            const jv *a = &row->items[pi];
            if (a->type == J_NULL) continue;
            if (parse_array(a, "grads[][]", NULL, p, p->grad)) return -1;
        }
    }
    for (gi = 0; gi < s->ngroups; ++gi) {
        radam_config cfg = s->groups[gi].cfg;
        group *g = &s->groups[gi];
        for (pi = 0; pi < g->nparams; ++pi) {
            param *p = &g->params[pi];
            int rc;
            p->had_grad = grads->items[gi].items[pi].type != J_NULL;
            if (!p->had_grad) continue; /* no gradient: skipped, its counter unchanged */
            p->count++;
            if (s->f32) {
                for (j = 0; j < p->size; ++j) p->grad_f[j] = (float)p->grad[j];
                rc = radam_step_f32(p->size, &cfg, p->count, p->theta_f, p->grad_f, p->m_f, p->v_f);
            } else {
                rc = radam_step(p->size, &cfg, p->count, p->theta, p->grad, p->m, p->v);
            }
            if (rc != RADAM_OK) return fail(STEP_FAILED, "radam_step returned %d", rc);
        }
    }
    s->steps++;
    total_steps++;
    out(",\"result\":{\"params\":[");
    for (gi = 0; gi < s->ngroups; ++gi) {
        out(gi ? ",[" : "[");
        for (pi = 0; pi < s->groups[gi].nparams; ++pi) {
            if (pi) out(",");
            out_array(&s->groups[gi].params[pi], s->f32, 0);
        }
        out("]");
    }
    out("]}");
    return 0;
}

static int m_add_group(const jv *params)
{
    session *s = get_session(params);
    group g;
    if (!s) return -1;
    if (parse_group(j_get(params, "group"), s->f32, &g)) {
        free_group(&g);
        return -1;
    }
    s->groups = (group *)xrealloc(s->groups, sizeof(group) * (size_t)(s->ngroups + 1));
    s->groups[s->ngroups++] = g;
    total_groups++;
    out(",\"result\":{}");
    return 0;
}

static int m_save_state(const jv *params)
{
    session *s = get_session(params);
    int gi, pi;
    if (!s) return -1;
    out(",\"result\":{\"state\":{\"groups\":[");
    for (gi = 0; gi < s->ngroups; ++gi) {
        out(gi ? ",[" : "[");
        for (pi = 0; pi < s->groups[gi].nparams; ++pi) {
            param *p = &s->groups[gi].params[pi];
            outf(pi ? ",{\"count\":%ld,\"m\":" : "{\"count\":%ld,\"m\":", p->count);
            out_array(p, s->f32, 1);
            out(",\"v\":");
            out_array(p, s->f32, 2);
            out("}");
        }
        out("]");
    }
    out("]}}");
    return 0;
}

static int m_load_state(const jv *params)
{
    session *s = get_session(params);
    const jv *groups = j_get(j_get(params, "state"), "groups");
    int gi, pi, j, pass;
    if (!s) return -1;
    if (!groups || groups->type != J_ARR || groups->n != s->ngroups)
        return fail(INVALID, "state.groups must have one list per group (%d)", s->ngroups);
    /* Pass 0 checks everything; pass 1 loads. */
    for (pass = 0; pass < 2; ++pass) {
        for (gi = 0; gi < s->ngroups; ++gi) {
            const jv *row = &groups->items[gi];
            group *g = &s->groups[gi];
            if (row->type != J_ARR || row->n != g->nparams) return fail(INVALID, "state.groups[%d]: wrong length", gi);
            for (pi = 0; pi < g->nparams; ++pi) {
                param *p = &g->params[pi];
                const jv *entry = &row->items[pi], *count = j_get(entry, "count");
                if (!is_int(count) || count->num < 0 || count->num > 2147483647.0)
                    return fail(INVALID, "state: count must be an integer in [0, 2^31)");
                if (pass == 0) {
                    /* Check into a scratch buffer: a refused state changes nothing. */
                    double *scratch = (double *)xmalloc(sizeof(double) * (size_t)(p->size ? p->size : 1));
                    int bad = parse_array(j_get(entry, "m"), "state m", NULL, p, scratch)
                              || parse_array(j_get(entry, "v"), "state v", NULL, p, scratch);
                    free(scratch);
                    if (bad) return -1;
                    continue;
                }
                p->count = (long)count->num;
                parse_array(j_get(entry, "m"), "state m", NULL, p, p->m);
                parse_array(j_get(entry, "v"), "state v", NULL, p, p->v);
                for (j = 0; j < p->size; ++j) {
                    p->m_f[j] = (float)p->m[j];
                    p->v_f[j] = (float)p->v[j];
                }
                p->had_grad = 0;
            }
        }
    }
    out(",\"result\":{}");
    return 0;
}

static int m_inputs(const jv *params)
{
    session *s = get_session(params);
    int gi, pi;
    if (!s) return -1;
    out(",\"result\":{\"grads\":[");
    for (gi = 0; gi < s->ngroups; ++gi) {
        out(gi ? ",[" : "[");
        for (pi = 0; pi < s->groups[gi].nparams; ++pi) {
            param *p = &s->groups[gi].params[pi];
            if (pi) out(",");
            if (p->had_grad) out_array(p, s->f32, 3);
            else out("null");
        }
        out("]");
    }
    out("]}");
    return 0;
}

static int m_end(const jv *params)
{
    session *s = get_session(params);
    int gi;
    if (!s) return -1;
    outf(",\"result\":{\"steps\":%ld,\"groups\":%d}", s->steps, s->ngroups);
    for (gi = 0; gi < s->ngroups; ++gi) free_group(&s->groups[gi]);
    free(s->groups);
    s->groups = NULL;
    s->live = 0;
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Main loop                                                                 */
/* ------------------------------------------------------------------------ */

/* One line of stdin without its "\n" (NULL at the end); *length counts any
 * NUL bytes in it, which the caller refuses. */
static char *read_line(size_t *length)
{
    static char *buf;
    static size_t cap;
    size_t len = 0;
    int ch;
    while ((ch = getchar()) != EOF) {
        if (len + 2 > cap) buf = (char *)xrealloc(buf, cap = cap ? cap * 2 : 65536);
        if (ch == '\n') break;
        buf[len++] = (char)ch;
    }
    if (ch == EOF && len == 0) return NULL;
    if (!buf) buf = (char *)xrealloc(buf, cap = 65536);
    buf[len] = '\0';
    *length = len;
    return buf;
}

int main(void)
{
    int said_hello = 0;
    char *line;
    size_t length;
    while ((line = read_line(&length)) != NULL) {
        jparser ps;
        jv req;
        const jv *id, *method, *params;
        int rc = 0, closing = 0;
        ps.p = line;
        ps.ok = 1;
        j_value(&ps, &req, 0);
        j_ws(&ps);
        if (!ps.ok || *ps.p || strlen(line) != length) { /* not JSON, or a NUL byte inside the line */
            j_free(&req);
            reply_error(NULL, -32700, "parse error");
            continue;
        }
        id = j_get(&req, "id");
        method = j_get(&req, "method");
        params = j_get(&req, "params");
        if (!is_int(id) || !method || method->type != J_STR || !params || params->type != J_OBJ) {
            reply_error(is_int(id) ? id : NULL, -32600, "invalid request");
            j_free(&req);
            continue;
        }
        out_len = 0;
        reply_id(id);
        if (strcmp(method->str, "hello") == 0) {
            rc = m_hello(params);
            if (rc == 0) said_hello = 1;
        } else if (!said_hello) {
            rc = fail(-32002, "hello first");
        } else if (strcmp(method->str, "open") == 0) {
            rc = m_open(params);
        } else if (strcmp(method->str, "step") == 0) {
            rc = m_step(params);
        } else if (strcmp(method->str, "add_group") == 0) {
            rc = m_add_group(params);
        } else if (strcmp(method->str, "save_state") == 0) {
            rc = m_save_state(params);
        } else if (strcmp(method->str, "load_state") == 0) {
            rc = m_load_state(params);
        } else if (strcmp(method->str, "inputs") == 0) {
            rc = m_inputs(params);
        } else if (strcmp(method->str, "end") == 0) {
            rc = m_end(params);
        } else if (strcmp(method->str, "close") == 0) {
            outf(",\"result\":{\"sessions\":%ld,\"steps\":%ld,\"groups\":%ld}", total_sessions, total_steps,
                 total_groups);
            closing = 1;
        } else {
            rc = fail(-32601, "method not found: %.60s", method->str);
        }
        if (rc) reply_error(id, err_code, err_msg);
        else {
            out("}");
            flush_line();
        }
        j_free(&req);
        if (closing) return 0;
    }
    return 0;
}
