// hexfloat.mjs - float64 values as the hex strings of the radam-ref protocol and
// golden vectors: Python's float.hex / C99 %a ("0x1.8000000000000p+1"), and
// "nan", "inf", "-inf".  Exact both ways; imports nothing.

const HEX = /^(-?)0[xX]([0-9a-fA-F]+)(?:\.([0-9a-fA-F]*))?[pP]([+-]?\d+)$/;

/** A hex float string as a Number, exactly (null if `s` is not one, or is
 *  finite but beyond float64's range; a value below it rounds to 0). */
export function parseHex(s) {
  if (s === "nan") return NaN;
  if (s === "inf") return Infinity;
  if (s === "-inf") return -Infinity;
  const match = typeof s === "string" ? HEX.exec(s) : null;
  if (!match) return null;
  const [, sign, whole, frac = "", exp] = match;
  const digits = (whole + frac).replace(/^0+/, "");
  // float.hex and %a write at most 14 significant hex digits; longer mantissas
  // (which this reader could not round exactly) are refused, not misread.
  if (digits.length > 32) return null;
  let e = Number(exp) - 4 * frac.length;
  let x = digits ? Number(BigInt("0x" + digits)) : 0; // exact for the <= 53-bit mantissas float.hex and %a write
  // Scale by 2^e in steps that stay exact (2^±1000 are normal numbers): one rounding at most.
  // Once x is 0 or infinite no step changes it, so a huge exponent costs nothing.
  while (e > 1000 && x !== 0 && Number.isFinite(x)) { x *= 2 ** 1000; e -= 1000; }
  while (e < -1000 && x !== 0) { x *= 2 ** -1000; e += 1000; }
  if (x !== 0 && Number.isFinite(x)) x *= 2 ** e;
  if (!Number.isFinite(x)) return null; // beyond float64's range: refused, as Python's float.fromhex does
  return sign ? -x : x;
}

const VIEW = new DataView(new ArrayBuffer(8));

/** A Number as Python's float.hex writes it (13 hex digits; "0x0.0p+0" for zero). */
export function formatHex(x) {
  if (Number.isNaN(x)) return "nan";
  if (x === Infinity) return "inf";
  if (x === -Infinity) return "-inf";
  VIEW.setFloat64(0, x);
  const hi = VIEW.getUint32(0), lo = VIEW.getUint32(4);
  const sign = hi >>> 31 ? "-" : "";
  const biased = (hi >>> 20) & 0x7ff;
  const frac = ((BigInt(hi & 0xfffff) << 32n) | BigInt(lo)).toString(16).padStart(13, "0");
  if (biased === 0) {
    return frac === "0000000000000" ? `${sign}0x0.0p+0` : `${sign}0x0.${frac}p-1022`;
  }
  const e = biased - 1023;
  return `${sign}0x1.${frac}p${e >= 0 ? "+" : ""}${e}`;
}
