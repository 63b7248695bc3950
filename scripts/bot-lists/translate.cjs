// Turns the pattern list of the npm package `isbot` (Unlicense) into
// src/events/bot_patterns.txt: one pattern a line, in the dialect of Rust's
// `regex` crate. Called by scripts/refresh-bot-lists with the unpacked
// package directory, the output path, the package version and UA lists to
// verify against. Rust's `regex` has no look-around; a negative look-behind of
// literals at the start of a pattern, or a negative look-ahead of literals at
// its end, is rewritten as an equivalent consuming group (same answer for
// "does it match anywhere"). Every rewrite is checked against the original
// with JavaScript's own engine on every given user agent; a pattern that
// cannot be rewritten, or whose rewrite disagrees, is dropped and reported.
'use strict';
const fs = require('fs');
const path = require('path');

const [pkgDir, outPath, version, ...uaFiles] = process.argv.slice(2);
const isbot = require(path.resolve(pkgDir, 'index.js'));
const list = isbot.list;
if (!Array.isArray(list) || list.length < 50) throw new Error(`isbot ${version}: no pattern list exported`);

// Literals inside a look-around: plain characters and escaped punctuation only.
function literals(body) {
  const inner = body.replace(/^\(\?:(.*)\)$/, '$1');
  const alts = inner.split('|');
  const out = [];
  for (const a of alts) {
    let s = '';
    for (let i = 0; i < a.length; i++) {
      const c = a[i];
      if (c === '\\') {
        const n = a[++i];
        if (n === undefined || /[A-Za-z0-9]/.test(n)) return null; // \b, \d, \1 ...
        s += n;
      } else if ('()[]{}.*+?^$|'.includes(c)) {
        return null;
      } else {
        s += c;
      }
    }
    out.push(s.toLowerCase());
  }
  return out;
}

const esc = (c) => (/[\\^$.|?*+()[\]{}\/-]/.test(c) ? '\\' + c : c);
const escClass = (c) => (/[\\\]\[^-]/.test(c) ? '\\' + c : c);

function groupByFirst(strings) {
  const m = new Map();
  for (const s of strings) {
    const k = s[0];
    if (!m.has(k)) m.set(k, []);
    m.get(k).push(s.slice(1));
  }
  return m;
}

// Matches (consuming) iff the text that follows starts with none of `strings`.
function notFollowedBy(strings) {
  const by = groupByFirst(strings);
  const alts = ['$', `[^${[...by.keys()].map(escClass).join('')}]`];
  for (const [c, rest] of by) {
    if (rest.includes('')) continue; // c completes a forbidden literal
    alts.push(esc(c) + notFollowedBy(rest));
  }
  return `(?:${alts.join('|')})`;
}

// Matches (consuming) iff the text before ends with none of `strings`.
function notPrecededBy(strings) {
  const by = groupByFirst(strings.map((s) => [...s].reverse().join('')));
  const alts = ['^', `[^${[...by.keys()].map(escClass).join('')}]`];
  for (const [c, rest] of by) {
    if (rest.includes('')) continue;
    alts.push(notPrecededBy(rest.map((r) => [...r].reverse().join(''))) + esc(c));
  }
  return `(?:${alts.join('|')})`;
}

// Index of the parenthesis closing the group that opens at `open`.
function closing(p, open) {
  let depth = 0;
  let inClass = false;
  for (let i = open; i < p.length; i++) {
    const c = p[i];
    if (c === '\\') { i++; continue; }
    if (inClass) { if (c === ']') inClass = false; continue; }
    if (c === '[') inClass = true;
    else if (c === '(') depth++;
    else if (c === ')' && --depth === 0) return i;
  }
  return -1;
}

function translate(p) {
  let out = p;
  if (out.startsWith('(?<!')) {
    const end = closing(out, 0);
    const lits = end > 0 && literals(out.slice(4, end));
    if (!lits) return null;
    out = notPrecededBy(lits) + out.slice(end + 1);
  }
  const la = out.lastIndexOf('(?!');
  if (la >= 0) {
    const end = closing(out, la);
    if (end !== out.length - 1) return null; // look-ahead not at the end
    const lits = literals(out.slice(la + 3, end));
    if (!lits) return null;
    out = out.slice(0, la) + notFollowedBy(lits);
  }
  if (/\(\?<?[=!]|\\[1-9]|\(\?>|\(\?<[A-Za-z]/.test(out)) return null; // what remains unsupported
  return out;
}

// JavaScript reads `-` next to a class escape inside `[...]` (`[\w\d-.]`) as a
// literal hyphen; Rust's `regex` rejects it as a range. Escape such hyphens.
function dialect(p) {
  let out = '';
  let inClass = false;
  for (let i = 0; i < p.length; i++) {
    const c = p[i];
    if (c === '\\') { out += c + p[i + 1]; i++; continue; }
    if (!inClass && c === '[') inClass = true;
    else if (inClass && c === ']') inClass = false;
    else if (inClass && c === '-') {
      const prevEsc = /\\[wdsWDS]$/.test(out);
      const nextEsc = /^\\[wdsWDS]/.test(p.slice(i + 1));
      if (prevEsc || nextEsc) { out += '\\-'; continue; }
    }
    out += c;
  }
  return out;
}

const uas = [...new Set(uaFiles.flatMap((f) => fs.readFileSync(f, 'utf8').split('\n')).filter((l) => l.trim() && !l.startsWith('# ')))];
const kept = [];
const rewritten = [];
const dropped = [];
const escaped = [];
for (const source of list) {
  const p = dialect(source);
  if (p !== source) escaped.push(source);
  if (!/\(\?<?[=!]|\\[1-9]|\(\?>/.test(p)) { kept.push(p); continue; }
  const t = translate(p);
  if (t === null) { dropped.push([p, 'unsupported look-around']); continue; }
  const a = new RegExp(p, 'i');
  const b = new RegExp(t, 'i');
  // The user agents plus strings built around the look-around's own literals.
  const probes = [...uas];
  for (const l of (p.match(/[a-z][a-z /]{2,}/gi) || [])) for (const pre of ['', ' ', 'x', ' cu', 'cam', 'lib', ' channel/', 'google/', 'g'])
    for (const post of ['', ';', 'wv', 'app', '/google', ' pixel', 'sapphire', 'x']) probes.push(pre + l + post);
  const bad = probes.find((u) => a.test(u) !== b.test(u));
  if (bad !== undefined) { dropped.push([p, `rewrite disagrees on ${JSON.stringify(bad)}`]); continue; }
  kept.push(t);
  rewritten.push([p, t]);
}

// The whole list must still answer as isbot does, bar what was dropped.
const all = new RegExp(kept.join('|'), 'i');
const disagree = uas.filter((u) => all.test(u) !== isbot.isbot(u));
const lines = [
  `# Bot user-agent patterns, one regular expression a line, matched ASCII`,
  `# case-insensitively anywhere in the user agent (src/events/classify.rs).`,
  `#`,
  `# Source: the npm package isbot ${version} (its exported \`list\`),`,
  `# https://github.com/omrilotan/isbot. Licence: The Unlicense (public domain`,
  `# dedication; no conditions). Generated by scripts/refresh-bot-lists; do not`,
  `# edit by hand: add local patterns to SUPPLEMENTARY_BOT_PATTERNS instead.`,
  `#`,
  `# ${list.length} patterns in the source, ${kept.length} here:`,
  `# ${kept.length - rewritten.length} without look-around, ${rewritten.length} rewritten without look-around,`,
  `# ${dropped.length} dropped; ${escaped.length} with a class hyphen escaped for Rust.`,
  ...escaped.map((p) => `#   hyphen escaped: ${p}`),
  ...rewritten.map(([p]) => `#   rewritten: ${p}`),
  ...dropped.map(([p, why]) => `#   dropped: ${p} (${why})`),
  `# Checked against isbot() on ${uas.length} user agents: ${disagree.length} disagree.`,
  ...kept,
];
fs.writeFileSync(outPath, lines.join('\n') + '\n');
console.log(`isbot ${version}: ${list.length} patterns, ${kept.length} written (${rewritten.length} rewritten, ${escaped.length} hyphen-escaped), ${dropped.length} dropped, ${disagree.length} of ${uas.length} user agents disagree with isbot()`);
for (const [p, why] of dropped) console.log(`  dropped: ${p}: ${why}`);
for (const u of disagree.slice(0, 20)) console.log(`  disagrees: ${u}`);
