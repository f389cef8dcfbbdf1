// A team member's field day, as the mobile app does it, against the generated types.
//
// tests/test_clients.py generates ./generated/api.ts from the served OpenAPI document with
// openapi-typescript and type-checks this file under `tsc --strict`: no `any`, no casts
// (`as`), no non-null assertions. If the document loses a type, this stops compiling.
//
// It is written as the app would run it (with BASE_URL, PHONE and PASSWORD set, a team
// member's account), but the test only type-checks it: running it needs a bundler or a
// TypeScript runner, which the project does not install.

import createClient from "openapi-fetch";
import type { components, paths } from "./generated/api";

type Schemas = components["schemas"];
type Question = Schemas["SurveyQuestion"];
type Answer = Schemas["AnswerValue"];

/** An answer a volunteer would give to one question, by its kind. */
function answerFor(question: Question): Answer | null {
  switch (question.kind) {
    case "integer":
      return question.min ?? 1;
    case "decimal":
      return question.min ?? 1.5;
    case "boolean":
      return true;
    case "text":
      return "Nhà số 12";
    case "date":
      return question.min ?? "2025-07-01";
    case "single_choice":
      return question.choices[0]?.value ?? null;
    case "multi_choice":
      return question.choices.slice(0, question.maxSelected ?? 1).map((c) => c.value);
    case "note":
      return null;
    case "calculate":
      return null; // the app computes it from earlier answers; the server checks it
  }
}

/** Words for a question, in Vietnamese, as the app shows it. */
function describe(question: Question): string {
  const bound =
    question.kind === "integer" && question.max !== undefined && question.max !== null
      ? ` (≤ ${question.max === "collectedYear" ? "năm thu thập" : question.max})`
      : "";
  return `${question.label.vi}${bound}`;
}

function problemText(problem: Schemas["Problem"] | undefined): string {
  if (problem === undefined) return "no answer";
  const fields = (problem.errors ?? []).map((e) => `${e.field}: ${e.message}`).join("; ");
  return `${problem.status} ${problem.code}: ${problem.detail} ${fields}`.trim();
}

export async function fieldDay(baseUrl: string, phone: string, password: string): Promise<void> {
  const api = createClient<paths>({ baseUrl });

  // Sign in, then every call carries the token.
  const login = await api.POST("/api/v1/auth/login", { body: { phone, password } });
  if (login.data === undefined) throw new Error(problemText(login.error));
  const tokens: Schemas["Tokens"] = login.data;
  const auth = { Authorization: `${tokens.tokenType} ${tokens.accessToken}` };

  const me = await api.GET("/api/v1/me", { headers: auth });
  if (me.data === undefined) throw new Error(problemText(me.error));
  const ward = me.data.areaCode;
  if (ward === null) throw new Error("a team member belongs to a ward");

  // Pull everything new since the last sync, page by page.
  const versions = new Map<string, Schemas["SurveyVersion"]>();
  const households: Schemas["HouseholdState"][] = [];
  const modules: Schemas["Module"][] = [];
  let cursor: string | undefined;
  for (;;) {
    const pulled = await api.GET("/api/v1/sync/pull", {
      params: { query: { cursor, limit: 500 } },
      headers: auth,
    });
    if (pulled.data === undefined) throw new Error(problemText(pulled.error));
    const page: Schemas["SyncPull"] = pulled.data;
    for (const version of page.surveyVersions) {
      versions.set(`${version.surveyId}/${version.version}`, version);
    }
    households.push(...page.households);
    modules.push(...(page.modules ?? []));
    cursor = page.nextCursor;
    if (!page.more) {
      for (const visit of page.visitPlan?.items ?? []) {
        console.log(`visit ${visit.householdId}: ${visit.reasonText}`);
      }
      break;
    }
  }

  // A survey version again, revalidated with its ETag (a 304 keeps what we have).
  const [first] = versions.values();
  if (first === undefined) throw new Error("no published survey");
  const fetched = await api.GET("/api/v1/surveys/{surveyId}/versions/{version}", {
    params: { path: { surveyId: first.surveyId, version: first.version } },
    headers: auth,
  });
  const etag = fetched.response.headers.get("ETag");
  const again = await api.GET("/api/v1/surveys/{surveyId}/versions/{version}", {
    params: {
      path: { surveyId: first.surveyId, version: first.version },
      header: { "If-None-Match": etag },
    },
    headers: auth,
  });
  const survey: Schemas["SurveyVersion"] = again.data ?? fetched.data ?? first;
  for (const question of survey.definition.questions) console.log(describe(question));

  // Register a household and answer the survey there.
  const created = await api.POST("/api/v1/households", {
    body: { wardCode: ward, id: crypto.randomUUID(), label: "Nhà số 12" },
    headers: auth,
  });
  if (created.data === undefined) throw new Error(problemText(created.error));
  const household: Schemas["Household"] = created.data;
  const answers: Record<string, Answer | null> = {};
  for (const question of survey.definition.questions) {
    const answer = answerFor(question);
    if (answer !== null) answers[question.key] = answer;
  }
  const roster = survey.definition.roster;
  const members: Schemas["MemberAnswers"][] =
    roster === null || roster === undefined
      ? []
      : [
          {
            memberId: crypto.randomUUID(),
            answers: Object.fromEntries(roster.questions.map((q) => [q.key, answerFor(q)])),
          },
        ];
  const submission: Schemas["NewSubmission"] = {
    id: crypto.randomUUID(),
    surveyId: survey.surveyId,
    surveyVersion: survey.version,
    householdId: household.id,
    collectedAt: new Date().toISOString(),
    consent: { given: true, noticeVersion: survey.definition.noticeVersion ?? "1" },
    answers,
    members,
  };

  // A lesson read and a quiz taken at the household, offline.
  const progress: Schemas["PushProgress"][] = [];
  const attempts: Schemas["PushAttempt"][] = [];
  const [pulledModule] = modules;
  if (pulledModule !== undefined) {
    const fresh = await api.GET("/api/v1/modules/{moduleId}", {
      params: { path: { moduleId: pulledModule.id } },
      headers: { ...auth, "Accept-Language": "vi" },
    });
    const module: Schemas["Module"] = fresh.data ?? pulledModule;
    progress.push({
      id: crypto.randomUUID(),
      moduleId: module.id,
      lessons: module.lessons.map((lesson) => lesson.id),
      version: module.version,
      householdId: household.id,
    });
    const chosen: Record<string, string[]> = {};
    for (const question of module.quiz.questions) {
      const take = question.kind === "single_choice" ? 1 : 2;
      chosen[question.id] = question.choices.slice(0, take).map((choice) => choice.id);
    }
    attempts.push({
      attemptId: crypto.randomUUID(),
      moduleId: module.id,
      answers: chosen,
      version: module.version,
      householdId: household.id,
      takenAt: new Date().toISOString(),
    });
  }

  // Back online: one push, one result per item (submissions, then progress, then attempts).
  const pushed = await api.POST("/api/v1/sync/push", {
    body: { submissions: [submission], progress, attempts },
    headers: auth,
  });
  if (pushed.data === undefined) throw new Error(problemText(pushed.error));
  for (const result of pushed.data.results) {
    const score = result.score === undefined || result.score === null ? "" : ` ${result.score}`;
    console.log(`${result.id ?? "?"}: ${result.status}${score}`);
    for (const error of result.errors ?? []) console.log(`  ${error.field}: ${error.message}`);
  }

  // The ward's households, page by page.
  let page: string | null = null;
  let count = 0;
  do {
    const listed = await api.GET("/api/v1/households", {
      params: { query: { ward, cursor: page, limit: 200 } },
      headers: auth,
    });
    if (listed.data === undefined) throw new Error(problemText(listed.error));
    const found: Schemas["HouseholdPage"] = listed.data;
    count += found.items.length;
    page = found.nextCursor;
  } while (page !== null);
  console.log(`${count} households in ${ward} (${households.length} pulled)`);

  // The ward's card at the end of the day.
  const card = await api.GET("/api/v1/stats/areas/{code}", {
    params: { path: { code: ward }, query: { period: "current" } },
    headers: auth,
  });
  if (card.data === undefined) throw new Error(problemText(card.error));
  for (const indicator of card.data.indicators) {
    const value =
      indicator.value === null
        ? "—"
        : indicator.unit === "fraction"
          ? `${(indicator.value * 100).toFixed(1)} %`
          : indicator.value.toFixed(2);
    console.log(`${indicator.name}: ${value}`);
  }
}

const { BASE_URL, PHONE, PASSWORD } = process.env;
if (BASE_URL !== undefined && PHONE !== undefined && PASSWORD !== undefined) {
  await fieldDay(BASE_URL, PHONE, PASSWORD);
}
