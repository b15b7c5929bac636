// driver.mjs - the JavaScript port behind the radam-ref process protocol, version 1.
//
//     radam-ref conformance 'exec:node ports/js/driver.mjs'
//
// One JSON request per line on stdin, one JSON reply per line on stdout
// (schema: radam_protocol_v1.json, walkthrough: docs/porting.md); logs go to
// stderr.  Floats are float.hex strings ("0x1.8000000000000p+1", "nan", "inf"),
// read and written bit-exactly below.  The library, radam.mjs, knows nothing
// of this: it is the part a browser would import.
import { formatHex, parseHex as parseHexOrNull } from "./hexfloat.mjs";
import { CHOICES, VERSION, checkConfig, step } from "./radam.mjs";

const INVALID = -32602;
const UNSUPPORTED = 1;
const STEP_FAILED = 2;

class ProtocolError extends Error {
  constructor(code, message) {
    super(message);
    this.code = code;
  }
}

function parseHex(s, what) {
  const x = parseHexOrNull(s);
  if (x === null) throw new ProtocolError(INVALID, `${what} must be a hex float string, got ${String(JSON.stringify(s)).slice(0, 60)}`);
  return x;
}

// ---------------------------------------------------------------- values

function readArray(a, what, shape) {
  if (a === null || typeof a !== "object" || !Array.isArray(a.shape) || !Array.isArray(a.data)) {
    throw new ProtocolError(INVALID, `${what} must be {shape, data}`);
  }
  if (a.complex) throw new ProtocolError(UNSUPPORTED, "complex arrays");
  if (!a.shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
    throw new ProtocolError(INVALID, `${what}: shape must hold integers >= 0, got ${JSON.stringify(a.shape).slice(0, 60)}`);
  }
  const size = a.shape.reduce((p, d) => p * d, 1);
  if (a.data.length !== size) throw new ProtocolError(INVALID, `${what}: ${a.data.length} values for shape ${a.shape}`);
  if (shape && (shape.length !== a.shape.length || shape.some((d, i) => d !== a.shape[i]))) {
    throw new ProtocolError(INVALID, `${what}: shape ${a.shape} differs from the parameter's ${shape}`);
  }
  return Float64Array.from(a.data, (s) => parseHex(s, what));
}

function writeArray(shape, values) {
  return { shape, data: Array.from(values, formatHex) };
}

const OPTION_NAMES = {
  threshold: "threshold", comparison: "comparison", eps_placement: "epsPlacement", eps_root: "epsRoot",
  weight_decay_mode: "weightDecayMode", decay_form: "decayForm", before_rectification: "beforeRectification",
};

function readConfig(c) {
  if (c === null || typeof c !== "object") throw new ProtocolError(INVALID, "config must be an object");
  if (!Array.isArray(c.betas) || c.betas.length !== 2) throw new ProtocolError(INVALID, "config.betas must be a pair");
  const config = {
    lr: parseHex(c.lr, "config.lr"),
    betas: c.betas.map((b, i) => parseHex(b, `config.betas[${i}]`)),
    eps: parseHex(c.eps, "config.eps"),
    weightDecay: parseHex(c.weight_decay, "config.weight_decay"),
    nesterov: c.nesterov,
    maximize: c.maximize,
  };
  for (const [wire, name] of Object.entries(OPTION_NAMES)) {
    config[name] = wire === "threshold" || wire === "eps_root" ? parseHex(c[wire], `config.${wire}`) : c[wire];
    // A value this port does not know (a newer option value) is "not supported", not invalid.
    if (CHOICES[name] && typeof c[wire] === "string" && !CHOICES[name].includes(c[wire])) {
      throw new ProtocolError(UNSUPPORTED, `config.${wire} = ${c[wire]} is not supported`);
    }
  }
  try {
    return checkConfig(config);
  } catch (err) {
    throw new ProtocolError(INVALID, `config: ${err.message}`);
  }
}

function readGroup(g) {
  if (g === null || typeof g !== "object" || !Array.isArray(g.params)) {
    throw new ProtocolError(INVALID, "group must be {config, params}");
  }
  const config = readConfig(g.config);
  const params = g.params.map((a) => {
    const values = readArray(a, "group.params[]");
    const n = values.length;
    return { shape: a.shape, values, m: new Float64Array(n), v: new Float64Array(n), count: 0, lastGrad: null };
  });
  return { config, params };
}

// ---------------------------------------------------------------- sessions

const sessions = new Map();
let nextSession = 0;
const totals = { sessions: 0, steps: 0, groups: 0 };

function session(params) {
  const s = sessions.get(params.session);
  if (!s) throw new ProtocolError(INVALID, `no open session ${JSON.stringify(params.session)}`);
  return s;
}

function paramsOf(s) {
  return s.groups.map((g) => g.params.map((p) => writeArray(p.shape, p.values)));
}

const METHODS = {
  hello(params) {
    if (params.protocol !== 1) throw new ProtocolError(INVALID, "this driver speaks protocol 1");
    return {
      protocol: 1, name: "radam-js", version: VERSION,
      capabilities: {
        profile: "paper",
        profiles: ["paper", "authors", "torch", "torch_decoupled", "optax", "tf_addons", "timm"],
        dtypes: ["float64"],
        options: ["threshold", "comparison", "eps_placement", "eps_root", "decay_form", "before_rectification",
          "nesterov", "maximize"],
        weight_decay_modes: ["none", "l2", "decoupled", "decoupled_moving"],
        param_groups: true, add_group: true, save_state: true, grad_none: true, inputs: true,
      },
    };
  },
  open(params) {
    if (params.dtype !== "float64") throw new ProtocolError(UNSUPPORTED, `dtype ${params.dtype}`);
    if (!Array.isArray(params.groups) || params.groups.length < 1) {
      throw new ProtocolError(INVALID, "groups must be a non-empty array");
    }
    const groups = params.groups.map(readGroup);
    const id = nextSession++;
    sessions.set(id, { groups, steps: 0 });
    totals.sessions++;
    totals.groups += groups.length;
    return { session: id };
  },
  step(params) {
    const s = session(params);
    const grads = params.grads;
    if (!Array.isArray(grads) || grads.length !== s.groups.length) {
      throw new ProtocolError(INVALID, `grads must have one list per group (${s.groups.length})`);
    }
    // Read and check every gradient before changing anything.
    const read = s.groups.map((g, gi) => {
      const row = grads[gi];
      if (!Array.isArray(row) || row.length !== g.params.length) {
        throw new ProtocolError(INVALID, `grads[${gi}] must have ${g.params.length} entries`);
      }
      return row.map((a, pi) => (a === null ? null : readArray(a, `grads[${gi}][${pi}]`, g.params[pi].shape)));
    });
    s.groups.forEach((g, gi) => {
      const config = g.config;
      g.params.forEach((p, pi) => {
        const grad = read[gi][pi];
        p.lastGrad = grad;
        if (grad === null) return; // no gradient: skipped, its counter unchanged
        p.count += 1;
        try {
          step(config, p.count, p.values, grad, p.m, p.v);
        } catch (err) {
          throw new ProtocolError(STEP_FAILED, `step: ${err.message}`);
        }
      });
    });
    s.steps++;
    totals.steps++;
    return { params: paramsOf(s) };
  },
  add_group(params) {
    const s = session(params);
    s.groups.push(readGroup(params.group));
    totals.groups++;
    return {};
  },
  save_state(params) {
    const s = session(params);
    return {
      state: {
        groups: s.groups.map((g) => g.params.map((p) => ({
          count: p.count, m: writeArray(p.shape, p.m), v: writeArray(p.shape, p.v),
        }))),
      },
    };
  },
  load_state(params) {
    const s = session(params);
    const groups = params.state?.groups;
    if (!Array.isArray(groups) || groups.length !== s.groups.length) {
      throw new ProtocolError(INVALID, `state.groups must have one list per group (${s.groups.length})`);
    }
    const loaded = s.groups.map((g, gi) => {
      const row = groups[gi];
      if (!Array.isArray(row) || row.length !== g.params.length) {
        throw new ProtocolError(INVALID, `state.groups[${gi}] has the wrong length`);
      }
      return row.map((entry, pi) => {
        const shape = g.params[pi].shape;
        if (!Number.isSafeInteger(entry?.count) || entry.count < 0) throw new ProtocolError(INVALID, "state: bad count");
        return { count: entry.count, m: readArray(entry.m, "state m", shape), v: readArray(entry.v, "state v", shape) };
      });
    });
    s.groups.forEach((g, gi) => g.params.forEach((p, pi) => {
      Object.assign(p, loaded[gi][pi]);
      p.lastGrad = null;
    }));
    return {};
  },
  inputs(params) {
    const s = session(params);
    return { grads: s.groups.map((g) => g.params.map((p) => (p.lastGrad ? writeArray(p.shape, p.lastGrad) : null))) };
  },
  end(params) {
    const s = session(params);
    sessions.delete(params.session);
    return { steps: s.steps, groups: s.groups.length };
  },
  close() {
    return { ...totals };
  },
};

// ---------------------------------------------------------------- main loop

let saidHello = false;

function handle(line) {
  let request;
  try {
    request = JSON.parse(line);
  } catch {
    return { reply: { id: null, error: { code: -32700, message: "parse error" } } };
  }
  const { id, method, params } = request ?? {};
  if (!Number.isSafeInteger(id) || typeof method !== "string" || params === null || typeof params !== "object") {
    return { reply: { id: Number.isSafeInteger(id) ? id : null, error: { code: -32600, message: "invalid request" } } };
  }
  try {
    if (method !== "hello" && !saidHello) throw new ProtocolError(-32002, "hello first");
    if (!Object.hasOwn(METHODS, method)) throw new ProtocolError(-32601, `method not found: ${method.slice(0, 60)}`);
    const result = METHODS[method](params);
    if (method === "hello") saidHello = true;
    return { reply: { id, result }, exit: method === "close" };
  } catch (err) {
    if (err instanceof ProtocolError) return { reply: { id, error: { code: err.code, message: err.message } } };
    // A bug of this driver on input it did not foresee: answer, log, keep serving.
    process.stderr.write(`radam-js driver: ${err?.stack ?? err}\n`);
    return { reply: { id, error: { code: -32603, message: `internal error: ${String(err?.message ?? err).slice(0, 200)}` } } };
  }
}

// Lines end at "\n" only (node:readline would also split at a lone "\r", which
// JSON allows as whitespace, and answer one request twice).
async function* lines(stream) {
  let pending = []; // pieces of the current line, joined once it ends (no quadratic copying)
  stream.setEncoding("utf8");
  for await (let chunk of stream) {
    let nl;
    while ((nl = chunk.indexOf("\n")) >= 0) {
      pending.push(chunk.slice(0, nl));
      yield pending.join("");
      pending = [];
      chunk = chunk.slice(nl + 1);
    }
    if (chunk.length) pending.push(chunk);
  }
  if (pending.length) yield pending.join(""); // a last line without "\n"
}

for await (const line of lines(process.stdin)) {
  const { reply, exit } = handle(line.endsWith("\r") ? line.slice(0, -1) : line);
  const text = JSON.stringify(reply) + "\n";
  if (exit) {
    process.stdout.write(text, () => process.exit(0));
    break;
  }
  process.stdout.write(text);
}
