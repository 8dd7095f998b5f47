// IAM's decision on each simulation read from stdin, by @cloud-copilot/iam-simulate.
//   node tests/iam/simulate.cjs .cache/iam-simulate < simulations.json
// In: [{principal, account, action, resource, context, identity, resource_policy}]
// Out: [{result: "Allowed" | "ImplicitlyDenied" | "ExplicitlyDenied", errors}]
// tests/iam.py builds the simulations; `make iam-simulate` installs the package.
"use strict";

const { runSimulation } = require(require.resolve("@cloud-copilot/iam-simulate",
  { paths: [process.argv[2]] }));

// iam-simulate 0.1.173 drops a context key whose variable part follows a colon
// (kms:EncryptionContext:<key>; it matches variables after a slash only, as in
// aws:RequestTag/<key>) and then evaluates the condition as if the key were absent.
// Such a key is carried under aws:RequestTag/<key>, a string key it does evaluate, in
// the request and in every policy's conditions alike: same operators, same values.
const COLON_VARIABLE = /^kms:EncryptionContext:(.+)$/i;

function carried(key) {
  const match = COLON_VARIABLE.exec(key);
  return match ? `aws:RequestTag/${match[1]}` : key;
}

function carryConditions(policy) {
  if (!policy) return policy;
  const statements = [policy.Statement].flat().map((statement) => {
    if (!statement.Condition) return statement;
    const condition = Object.fromEntries(Object.entries(statement.Condition).map(
      ([operator, keys]) => [operator, Object.fromEntries(
        Object.entries(keys).map(([key, value]) => [carried(key), value]))]));
    return { ...statement, Condition: condition };
  });
  return { ...policy, Statement: statements };
}

async function decide(s) {
  const context = Object.fromEntries(
    Object.entries(s.context).map(([key, value]) => [carried(key), value]));
  const answer = await runSimulation({
    request: {
      principal: s.principal, action: s.action, contextVariables: context,
      resource: { resource: s.resource, accountId: s.account },
    },
    identityPolicies: s.identity
      ? [{ name: "policy", policy: carryConditions(s.identity) }] : [],
    serviceControlPolicies: [],
    resourceControlPolicies: [],
    resourcePolicy: carryConditions(s.resource_policy) || undefined,
  }, {});
  if (answer.resultType === "error") return { result: null, errors: answer.errors };
  // A key it ignored would be judged absent: never let that pass silently.
  const ignored = answer.result.ignoredContextKeys || [];
  if (ignored.length) return { result: null, errors: { ignoredContextKeys: ignored } };
  return { result: answer.overallResult, errors: null };
}

async function main() {
  const chunks = [];
  for await (const chunk of process.stdin) chunks.push(chunk);
  const answers = [];
  for (const s of JSON.parse(Buffer.concat(chunks).toString())) answers.push(await decide(s));
  process.stdout.write(JSON.stringify(answers));
}

main().catch((error) => { console.error(error); process.exit(1); });
