// tests/cache-tests/score.mjs -- score a results file of the http-cache-tests
// client with the suite's own determineTestResult (lib/display.mjs), with
// dependencies honoured, as cache-tests.fyi publishes them.
//
//   node score.mjs [-v] [--json] --suite DIR RESULTS.json
//
// DIR is the installed package (node_modules/http-cache-tests). Prints one line:
//   required P/N optimal P/N
// where N counts the tests of that kind the client ran (a result is recorded)
// and P those the suite rates a pass. A required test whose dependency failed
// counts as not passed, as on the published page. With -v, every required test
// that did not pass follows on its own line: its outcome (fail,
// dependency_fail, setup_fail, retry, harness_fail), its id and the message.
// With --json, one JSON object instead: {required:{passed,run},
// optimal:{passed,run}, failed:[{id,outcome,detail}]}.
// Exit status 0 when scored, 2 on usage or unreadable input.

import fs from 'node:fs'
import path from 'node:path'
import { pathToFileURL } from 'node:url'

function usage (msg) {
  if (msg) console.error(`score.mjs: ${msg}`)
  console.error('usage: node score.mjs [-v] [--json] --suite DIR RESULTS.json')
  process.exit(2)
}

let verbose = false
let json = false
let suiteDir
let resultsPath
const args = process.argv.slice(2)
for (let i = 0; i < args.length; i++) {
  const a = args[i]
  if (a === '-v') verbose = true
  else if (a === '--json') json = true
  else if (a === '--suite') suiteDir = args[++i]
  else if (a.startsWith('-')) usage(`unknown option ${a}`)
  else if (resultsPath === undefined) resultsPath = a
  else usage('one results file only')
}
if (!suiteDir || !resultsPath) usage()

const load = rel => import(pathToFileURL(path.resolve(suiteDir, rel)).href)

let results
try {
  results = JSON.parse(fs.readFileSync(resultsPath, 'utf8'))
} catch (err) {
  usage(`cannot read ${resultsPath}: ${err.message}`)
}

// The same list the suite's cli.mjs runs: tests/index.mjs plus surrogate-control.
const suites = [...(await load('tests/index.mjs')).default]
suites.push((await load('tests/surrogate-control.mjs')).default)
const display = await load('lib/display.mjs')

// determineTestResult returns one of the suite's resultTypes: [icon, colour, symbol].
const OUTCOMES = {
  '✅': 'pass',
  '⛔️': 'fail',
  '⚠️': 'optional_fail',
  Y: 'yes',
  N: 'no',
  '🔹': 'setup_fail',
  '⁉️': 'harness_fail',
  '⚪️': 'dependency_fail',
  '↻': 'retry',
  '-': 'untested'
}

const score = { required: { passed: 0, run: 0 }, optimal: { passed: 0, run: 0 } }
const failed = []
for (const suite of suites) {
  for (const test of suite.tests) {
    const raw = results[test.id]
    if (raw === undefined) continue
    const kind = test.kind === undefined ? 'required' : test.kind
    if (kind !== 'required' && kind !== 'optimal') continue
    const outcome = OUTCOMES[display.determineTestResult(suites, test.id, results)[2]] || 'unknown'
    score[kind].run++
    if (outcome === 'pass') {
      score[kind].passed++
    } else if (kind === 'required') {
      let detail = Array.isArray(raw) ? raw.slice(1).join(' ') : String(raw)
      if (outcome === 'dependency_fail') {
        const deps = test.depends_on.filter(dep =>
          !['pass', 'yes'].includes(OUTCOMES[display.determineTestResult(suites, dep, results)[2]]))
        detail = `depends on ${deps.join(', ')}`
      }
      failed.push({ id: test.id, outcome, detail })
    }
  }
}

if (json) {
  console.log(JSON.stringify({ ...score, failed }))
} else {
  console.log(`required ${score.required.passed}/${score.required.run} optimal ${score.optimal.passed}/${score.optimal.run}`)
  if (verbose) {
    for (const f of failed) console.log(`  ${f.outcome.padEnd(15)} ${f.id}  ${f.detail}`)
  }
}
