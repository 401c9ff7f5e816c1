// The continuity page (auditors): what `liaison directory report` prints, read at a glance.
// Per municipality, every role a channel routes to with its holder and deputies by name, and what
// needs attention (vacant, a deputy standing in, nobody with a usable key, keys or assignments
// ending within 30 days, notices past their acknowledgement deadline), worded in the reader's
// language. The broker (GET /v1/directory/continuity) gives only the auditor's jurisdictions.
// Directory text reaches the page as text nodes only (dom.js).
import { h } from "./dom.js";
import { formatDateTime, t } from "./i18n.js";

const when = (iso) => (iso ? formatDateTime(iso) : "—");
const names = (list) => (list && list.length ? list.join(", ") : null);

/** The marks of one role: each a short line, the reason it needs attention. */
function marks(role, channels) {
  const out = role.flags.map((flag) => h("li", { class: `mark mark-${flag}` }, t(`continuity_${flag}`)));
  for (const e of role.ending_items || []) {
    const key = e.what === "key" ? "continuity_key_ends" : "continuity_assignment_ends";
    out.push(h("li", { class: "mark mark-ending" }, t(key, { name: e.name, at: when(e.ends) })));
  }
  for (const o of role.overdue_items || []) {
    out.push(h("li", { class: "mark mark-overdue" },
      t("continuity_overdue", { channel: channels[o.channel] || o.channel, at: when(o.due) })));
  }
  return out;
}

/** Exercise and test notices past their deadline: listed apart, never as needing attention
 *  (they do not escalate, and no real notice waits). */
function drills(role, channels) {
  const items = (role.exercise_overdue_items || []).map((o) => h("li", { class: `mark mark-exercise exercise-${o.exercise}` },
    t("continuity_exercise_overdue", { kind: t(`exercise_tag_${o.exercise}`), channel: channels[o.channel] || o.channel, at: when(o.due) })));
  return items.length ? h("ul", { class: "marks exercise-marks" }, items) : null;
}

function roleItem(role, channels) {
  const flagged = marks(role, channels);
  const holder = names(role.holder_names);
  const deputy = names(role.deputy_names);
  return h("li", { class: `continuity-role ${flagged.length ? "attention" : "fine"}`, "data-role": role.role },
    h("h4", {}, role.title),
    h("dl", { class: "meta" },
      h("dt", {}, t("continuity_holder")), h("dd", { class: "holder" }, holder || t("continuity_nobody")),
      h("dt", {}, t("continuity_deputy")), h("dd", { class: "deputy" }, deputy || "—"),
      h("dt", {}, t("continuity_channels")), h("dd", {}, role.channels.map((c) => channels[c] || c).join(", "))),
    flagged.length
      ? h("ul", { class: "marks" }, flagged)
      : h("p", { class: "mark-ok" }, `✓ ${t("continuity_ok")}`),
    drills(role, channels));
}

function place(group, channels, onlyAttention) {
  const roles = group.roles.filter((r) => !onlyAttention || marks(r, channels).length);
  if (!roles.length) return null;
  const attention = group.roles.filter((r) => marks(r, channels).length).length;
  return h("section", { class: "card continuity-place", "data-jurisdiction": group.jurisdiction },
    h("h3", {}, group.name),
    h("p", { class: "hint" }, t("continuity_place_summary", { roles: group.roles.length, attention })),
    h("ul", { class: "continuity-roles" }, roles.map((r) => roleItem(r, channels))));
}

/** The view: a summary, a switch to show only what needs attention, one card per place. */
export async function continuityView(show, api) {
  const report = await api("GET", "/v1/directory/continuity");
  const channels = report.channels || {};
  const only = h("input", { type: "checkbox", id: "continuity-only" });
  const list = h("div", { id: "continuity" });
  const all = report.jurisdictions.flatMap((g) => g.roles);
  const attention = all.filter((r) => marks(r, channels).length).length;
  const draw = () => {
    const places = report.jurisdictions.map((g) => place(g, channels, only.checked)).filter(Boolean);
    list.replaceChildren(...(places.length ? places : [h("p", { class: "empty" }, t("continuity_none"))]));
  };
  only.addEventListener("change", draw);
  show(h("section", {},
    h("h2", {}, t("continuity")),
    h("p", { id: "continuity-summary" },
      t("continuity_summary", { roles: all.length, places: report.jurisdictions.length, attention })),
    h("p", { class: "hint" }, t("continuity_as_of", { at: when(report.generated_at) })),
    h("label", { class: "inline", for: "continuity-only" }, only, " ", t("continuity_only_attention")),
    list));
  draw();
}
