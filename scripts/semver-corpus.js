#!/usr/bin/env node
// Writes tests/data/semver-npm-corpus.json: node-semver's own verdicts on a few hundred
// ranges and versions, which tests/test_semver.py checks mx.semver against. npm's `semver`
// package is the reference for mx's range semantics; recording its answers (instead of
// hand-deriving expected values) catches the cases nobody thought to reason about.
//
// Regenerate from the repository root (semver is installed into a throwaway folder, never
// into the repository; bump the pinned version deliberately and review the diff):
//
//   tmp=$(mktemp -d) && npm install --prefix "$tmp" --no-save semver@7.8.6 &&
//     NODE_PATH="$tmp/node_modules" node scripts/semver-corpus.js
//
// Options are npm's defaults (loose: false, includePrerelease: false), which is what mx
// implements. The output is deterministic: no randomness, no timestamps.

'use strict'

const fs = require('fs')
const path = require('path')
const semver = require('semver')
const semverVersion = require('semver/package.json').version

// Valid versions every range is tested against. They sit on the boundaries the ranges
// below draw: pre-releases of the bounds (`-0` is the lowest pre-release there is),
// releases either side, 0.x for ^/~, and build metadata (equal precedence, so the order
// decides which one maxSatisfying returns).
const POOL = [
  '0.0.0-0', '0.0.0', '0.0.1-rc.1', '0.0.1', '0.0.2', '0.0.3-beta', '0.0.3', '0.0.4',
  '0.1.0-0', '0.1.0', '0.1.9', '0.2.0-alpha', '0.2.0', '0.2.3-rc.1', '0.2.3', '0.2.9',
  '0.3.0-0', '0.3.0',
  '1.0.0-0', '1.0.0-alpha', '1.0.0-rc.1', '1.0.0', '1.0.1', '1.1.9',
  '1.2.0-0', '1.2.0', '1.2.2', '1.2.3-0', '1.2.3-1', '1.2.3-alpha', '1.2.3-alpha.2',
  '1.2.3-alpha.10', '1.2.3-rc.1', '1.2.3', '1.2.3+build.7', '1.2.4-0', '1.2.4-rc.1', '1.2.4',
  '1.2.9', '1.3.0-0', '1.3.0-beta', '1.3.0', '1.9.9',
  '2.0.0-0', '2.0.0-rc.1', '2.0.0', '2.0.1', '2.3.0', '2.3.4-0', '2.3.4-beta', '2.3.4',
  '2.3.5', '2.3.9', '2.4.0-0', '2.4.0', '2.5.0', '3.0.0-0', '3.0.0-beta.2', '3.0.0',
  '3.1.0', '4.0.0', '10.0.0', '9007199254740991.0.0',
]

// Strings fed to valid(version): the pool, plus what npm accepts or rejects at the edges
// of the grammar (leading zeros, prefixes, whitespace, empty identifiers, overflow).
const VERSIONS = POOL.concat([
  'v1.2.3', 'V1.2.3', '=1.2.3', 'vv1.2.3', 'v 1.2.3', ' 1.2.3 ', '\t1.2.3\n', '1.2.3\n',
  '\u00a01.2.3', '\ufeff1.2.3', '\u20281.2.3', '\u00851.2.3', '\u001c1.2.3',
  '01.2.3', '1.02.3', '1.2.03', '00.0.0', '1.2', '1', '1.2.3.4', '', ' ',
  '1.2.3-', '1.2.3-0', '1.2.3-00', '1.2.3-01', '1.2.3-0a', '1.2.3-01a', '1.2.3-a.01',
  '1.2.3--', '1.2.3-a-', '1.2.3-a..b', '1.2.3-a.', '1.2.3-.a', '1.2.3-a_b', '1.2.3-α',
  '1.2.3+', '1.2.3+a+b', '1.2.3+01', '1.2.3+a..b', '1.2.3+a.', '1.2.3-rc.1+build.01',
  '1.2.3+build-meta', '1.2.3 -rc', '1.2.3-rc 1', '-1.2.3', '+1.2.3', 'x.2.3', '1.2.x', '*',
  '9007199254740992.0.0', '1.9007199254740992.0', '1.2.9007199254740992',
  '99999999999999999999.0.0', '1.2.3-9007199254740993', '١.٢.٣', '1.2.3-rc.١',
  '1.2.3-' + 'a'.repeat(249), '1.2.3-' + 'a'.repeat(250), '1.2.3-' + 'a'.repeat(251),
  '1.2.3+' + 'b'.repeat(251),
])

// Partial versions and operators, combined below.
const PARTIALS = [
  '*', 'x', 'X', '1', '1.x', '1.x.x', '1.2', '1.2.x', '1.2.*', '1.2.3', '1.2.3-0',
  '1.2.3-rc.1', '1.2.4-0', '2', '2.0', '2.0.0-0', '2.3', '2.3.4', '0', '0.0', '0.0.x',
  '0.x', '0.0.0', '0.0.0-0', '0.0.3', '0.0.3-beta', '0.2', '0.2.3', '0.2.3-rc.1', 'v1.2.3',
  'v1.2', '1.2.3+b', '1.2+b', '1.2.x-beta', 'x.1', '1.x.3', '01.2.3', '1.02', '1.2.3-01',
]
const OPS = ['', '=', '>', '>=', '<', '<=', '^', '~', '~>']
const HYPHEN_ENDS = [
  '*', 'x', '1', '1.x', '1.2', '1.2.3', '1.2.3-0', '1.2.3-rc.1', '2', '2.3', '2.3.4',
  '2.3.4-0', '2.3.4-rc.1', 'v2.3.4', '0.0', '02.3',
]
// Comparators ANDed pairwise: pre-release floors meeting release bounds.
const CONJUNCTS = [
  '>=1.2.3-0', '<1.2.4', '>1.2.3-rc.1', '<2.0.0-0', '^1.2.3-0', '~2.3', '<=2.3.4-0',
  '1.x', '>=2.0.0-0', '<2.3.4-beta.1',
]

const TRICKY_RANGES = [
  // Pre-release floors written by the user: npm lets them admit pre-releases of that
  // major.minor.patch (the bug this corpus was made for).
  '>=2.0.0-0', '^1.2.3-0', '>=1.2.3-0 <1.2.4', '~1.2.3-0', '>=1.2.3-0', '<1.2.3-0',
  '>1.2.3-0', '<=1.2.3-0', '1.2.3-0', '=1.2.3-0', '>=0.0.0-0', '>=0.0.0', '<0.0.0-0',
  '<0.0.0', '>=1.0.0-0 <2.0.0-0', '1.2.3-0 - 1.2.4', '1.2.3 - 1.2.4-0', '^0.0.0-0',
  '^0.0.1-0', '~0.0.1-0', '<2.0.0-0', '<=2.0.0-0', '>=1.2.3-0 <=1.2.3', '>1.2.2 <1.2.3',
  '>=2.3.4-beta <2.3.4', '>=2.3.4-0 <2.3.4-beta', '^2.3.4-0 <2.3.4-beta',
  // Leading zeros (rejected by npm outside the loose mode).
  '>=01.2.3', '^01.2', '~1.02', '^1.2.3-01', '1.2.3-0a', '1.2.3-00a', '00', '01 - 2',
  '1.2.3 - 02', '>=1.2.3-rc.01', '1.2.3-a.01',
  // Build metadata: stripped before anything else, wherever it appears.
  '>=1.2.3+build <2', '^1.2.3+build', '1.2.3+build - 2.0.0+x', '+build', '1.2.3+',
  '1.2.3++', '1.2.3+a..b', '1.2.3 +b', '>=1.2.3 +build.5', '1.2.3+b.c <2+d',
  // Whitespace: collapsed, joined to operators, and JS's idea of whitespace.
  '>= 1.2.3', '>=  1.2.3', '> = 1.2.3', '< 2', '^ 1.2', '~ 1.2', '~> 1.2', '~ > 1.2',
  '  1.2.3  ', '1.2.3\t-\t2.0.0', '>=1.2.3\u00a0<2', '1.2.3 -2', '1.2.3- 2',
  '1.2.3  -  2.0', ' >=1.2.3 ', '\ufeff1.2.3', '1.2.3\n', '>=1.2.3\n<2', '>=1.2.3\u0085<2',
  '^ 1.2 ~ 1.2', '> 1 < 3', '>=1.2.3 <= 2', '<\t2.0.0',
  '>=1.2.3-v 2', '> 1.2.3-v 2', '<1.2.3-rc.v = 2', '1.2.3-v - 2', '^1.2.3-beta.v =1.2',
  '>=1.2.3v 2', '>= =1.2.3', '> v1.2', '>=1.2.3-0.v 1.x', '~> =1.2', '^ ^1.2', '~ ~1.2',
  '> ~1.2', '^ >=1.2', '< =1.2', '<= v 1.2', '>= 01.2.3', '> 1.2.3 - 2', '1.2.3 - > 2',
  // `v` and `=` prefixes.
  'v1.2.3', '=v1.2.3', 'v=1.2.3', 'v=1.2', '==1.2.3', 'vv1.2.3', '>=v1.2', '^v1.2.3',
  '~v1.2', 'v1.2.3 - v2', '=1.2.3 - 2', 'V1.2.3', '= 1.2.3', 'v 1.2.3', '>= v1.2.3',
  // Not ranges at all.
  '^', '~', '~>', '>', '>=', '<', '<=', '=', 'foo', '>=foo', '1.2.3.4', '1.2.3-', '1.2.3-+',
  'a.b.c', '1.2.3 - ', ' - 1.2.3', '1.2.3 - 2 - 3', '>1 <', '1.2.3 -', 'latest',
  '^1.2.3 ||| 2', '1.2.3|2', '!1.2.3', '>=1.2.3 !=1.2.4', '1.2.3-x', '1.2.3-*', '1.2.3 x',
  '^1.2.3 foo', '1.2.3-', '*.1', '*.*.*', 'x.x.x', '1.*.3', '^x.1', '~1.x.3', '~x', '^*',
  '~*', '>=*', '<=*', '>*', '<*', '=*', '1.2.3 - *', '* - 1.2.3', '>=1.2.3 *', '* <2',
  // 0.x carets and tildes.
  '^0.0.x', '^0.x', '^0.0.3-beta', '^0.2.3-rc.1', '~0.0.3-beta', '^1.2.x', '^1.x',
  '^1.2.3-rc.1', '~1.2.3-rc.1', '^0.0', '~0.0', '^0.1', '^0.1.0-0',
  // Numbers at and past Number.MAX_SAFE_INTEGER.
  '9007199254740991', '^9007199254740991', '~9007199254740991.1', '>9007199254740991.x',
  '>=9007199254740992.0.0', '99999999999999999999.0.0', '1.99999999999999999999',
  '>1.2.3-9007199254740992',
  // Alternatives.
  '<1.2 || >=3', '1.2.3 || 2.x', '^1.2.3-rc.1 || ^2.0.0-0', '<0.0.0-0 || 1.2.3',
  '1.2.3 || <0.0.0-0', '<0.0.0-0 || <0.0.0-0', '>=1.2.3 <1.2.2 || 2.x', '1.2.3||2.3.4',
  '1.2.3 ||2.3.4', '|| 1.2.3', '1.2.3 ||', '||', '1.2.3 | 2.3.4', '* || 1.2.3',
  '1.2.3 || *', '1.2.3 || x || 2', '1.2.3-0 - 1.2.3 || 2.3.4-beta - 2.3.4',
  '1.x || >=2.5.0 || 5.0.0 - 7.2.3', '~1.2.3 || ^2 <2.3.4 || >=3.0.0-beta.2',
  '>=1.2.3 >=1.2.3', '1.2.3 1.2.3', '>=1.2.3 <2 >=1.2.3',
  // Empty and blank: npm reads them as `*`.
  '', ' ', '\t',
  // Very long identifiers (npm bounds its regexes).
  '>=1.2.3-' + 'a'.repeat(250), '>=1.2.3-' + 'a'.repeat(251),
]

function rangesToTest () {
  const out = [...TRICKY_RANGES]
  for (const op of OPS) {
    for (const p of PARTIALS) {
      out.push(op + p)
      if (op && ['1.2', '1.2.3', '1.2.3-0', 'x', '0.2'].includes(p)) {
        out.push(op + ' ' + p)
      }
    }
  }
  for (const a of HYPHEN_ENDS) {
    for (const b of HYPHEN_ENDS) {
      out.push(`${a} - ${b}`)
    }
  }
  for (const a of CONJUNCTS) {
    for (const b of CONJUNCTS) {
      if (a !== b) {
        out.push(`${a} ${b}`)
      }
    }
  }
  return [...new Set(out)]
}

// One list entry per line: reviewable diffs when semver or the inputs change.
function serialize (corpus) {
  const fields = Object.entries(corpus).map(([key, value]) => {
    const text = Array.isArray(value) && value.length && typeof value[0] === 'object'
      ? '[\n' + value.map((item) => '  ' + JSON.stringify(item)).join(',\n') + '\n ]'
      : JSON.stringify(value)
    return ` ${JSON.stringify(key)}: ${text}`
  })
  return '{\n' + fields.join(',\n') + '\n}\n'
}

function main () {
  const reversed = [...POOL].reverse()
  const ranges = rangesToTest().map((range) => {
    const valid = semver.validRange(range)
    return {
      range,
      valid,
      // Only what the range admits; every other pool version is a `false` verdict.
      satisfies: POOL.filter((v) => semver.satisfies(v, range)),
      max: semver.maxSatisfying(POOL, range),
      max_reversed: semver.maxSatisfying(reversed, range),
    }
  })
  const versions = VERSIONS.map((version) => ({ version, valid: semver.valid(version) }))
  const corpus = {
    about: 'node-semver verdicts for mx.semver; regenerate with scripts/semver-corpus.js',
    semver: semverVersion,
    options: { loose: false, includePrerelease: false },
    pool: POOL,
    // The pool reversed, sorted by precedence: a real sort (the pool is written in order).
    // Not semver.sort, which breaks ties on build metadata; Array.prototype.sort is stable,
    // so 1.2.3+build.7 stays ahead of 1.2.3 as in Python's sorted().
    sorted_reversed_pool: [...reversed].sort(semver.compare),
    versions,
    ranges,
  }
  const target = path.join(__dirname, '..', 'tests', 'data', 'semver-npm-corpus.json')
  fs.mkdirSync(path.dirname(target), { recursive: true })
  fs.writeFileSync(target, serialize(corpus))
  const pairs = ranges.length * POOL.length
  console.log(`${target}: semver ${semverVersion}, ${ranges.length} ranges x ` +
              `${POOL.length} versions = ${pairs} satisfies verdicts, ` +
              `${versions.length} version strings`)
}

main()
