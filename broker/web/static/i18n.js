// Interface strings: English and Macedonian. A missing translation falls back to English.
export const LANGUAGES = { en: "English", mk: "Македонски" };

const STRINGS = {
  en: {
    title: "Liaison", tagline: "Secure notices between agencies and municipalities",
    signin: "Sign in", signout: "Sign out", as_contact: "Focal point or auditor", as_agency: "Agency",
    contact_id: "Your contact id", agency_id: "Agency id", signing_key: "Your signing key (Ed25519, .pem)",
    encryption_key: "Your encryption key (X25519, .pem; not needed by auditors)",
    root_file: "The directory root you were given at enrolment (root.json)",
    no_root: "no directory root was given at sign-in, so no agency key can be checked",
    root: "Directory root",
    keys_stay: "Your keys are read by this page only and never sent to the broker.",
    remember: "Keep the keys on this device, protected by a passphrase", passphrase: "Passphrase",
    unlock: "Unlock the keys kept on this device", forget: "Forget them",
    inbox: "Inbox", audit: "Audit log", status: "Notice status", all: "all", channel: "Channel",
    state: "State", live: "live", offline: "reconnecting…", new_notice: "New notice",
    empty: "No notices.", open: "Open", back: "Back",
    verified: (who, key) => `Signed by ${who}, key ${key}: verified against the signed directory. The text below is exactly what the agency wrote.`,
    refused: "Refused: this notice did not verify. Do not act on it; tell your administrator.",
    previous_key: (key) => `This notice was sent to your previous key (${key}). Your key has changed: the notice is re-wrapped for your new key shortly; open it again in a minute, or sign in with the previous key.`,
    ack: "Acknowledge", acked: (at) => `Acknowledged at ${at}.`, reply: "Reply to the sender (encrypted)",
    sent: "Sent", received: "Received", severity: "Severity", jurisdiction: "Jurisdiction", from: "From",
    notice_id: "Notice id", show: "Show", role: "Role", delivered: "delivered", read: "read",
    acknowledged: "acknowledged", escalated: "escalated", pending: "pending",
    filters: "Filters", from_time: "From (ISO time)", to_time: "To (ISO time)", actor: "Actor",
    action: "Action", notice: "Notice", search: "Search", verify: "Verify the log",
    chart_title: "Notices and median time to acknowledgement, per channel and jurisdiction",
    minutes: "min", no_acks: "no acknowledgement yet", checking: "Checking…",
    error: "Something went wrong", signin_failed: "Sign-in refused. Check the id and the key file.",
  },
  mk: {
    title: "Liaison", tagline: "Безбедни известувања меѓу агенции и општини",
    signin: "Најава", signout: "Одјава", as_contact: "Контакт-лице или ревизор", as_agency: "Агенција",
    contact_id: "Ваш идентификатор", agency_id: "Идентификатор на агенцијата",
    signing_key: "Ваш клуч за потпишување (Ed25519, .pem)",
    encryption_key: "Ваш клуч за шифрирање (X25519, .pem; не им треба на ревизорите)",
    root_file: "Коренот на именикот што го добивте при запишувањето (root.json)",
    keys_stay: "Клучевите ги чита само оваа страница и никогаш не се испраќаат до брокерот.",
    remember: "Чувај ги клучевите на овој уред, заштитени со лозинка", passphrase: "Лозинка",
    unlock: "Отклучи ги клучевите зачувани на овој уред", forget: "Заборави ги",
    inbox: "Сандаче", audit: "Ревизорски дневник", status: "Статус на известување", all: "сите",
    channel: "Канал", state: "Состојба", live: "во живо", offline: "повторно поврзување…",
    new_notice: "Ново известување", empty: "Нема известувања.", open: "Отвори", back: "Назад",
    verified: (who, key) => `Потпишано од ${who}, клуч ${key}: потврдено. Текстот подолу е точно она што го напиша агенцијата.`,
    refused: "Одбиено: ова известување не е потврдено. Не постапувајте по него; известете го администраторот.",
    previous_key: (key) => `Ова известување е испратено до вашиот претходен клуч (${key}). Вашиот клуч е променет: известувањето наскоро ќе биде повторно шифрирано за новиот клуч; отворете го повторно за една минута или најавете се со претходниот клуч.`,
    ack: "Потврди прием", acked: (at) => `Приемот е потврден во ${at}.`, reply: "Одговор до испраќачот (шифриран)",
    sent: "Испратено", received: "Примено", severity: "Сериозност", jurisdiction: "Надлежност",
    from: "Од", notice_id: "Идентификатор на известувањето", show: "Прикажи", role: "Улога",
    delivered: "доставено", read: "прочитано", acknowledged: "потврдено", escalated: "ескалирано",
    pending: "во тек", filters: "Филтри", from_time: "Од (ISO време)", to_time: "До (ISO време)",
    actor: "Актер", action: "Дејство", notice: "Известување", search: "Барај", verify: "Провери го дневникот",
    chart_title: "Известувања и средно време до потврда, по канал и надлежност",
    minutes: "мин", no_acks: "сè уште нема потврда", checking: "Проверка…",
    error: "Настана грешка", signin_failed: "Најавата е одбиена. Проверете го идентификаторот и клучот.",
  },
};

let language = localStorage.getItem("liaison.lang") || (navigator.language || "en").slice(0, 2);
if (!(language in STRINGS)) language = "en";

export const currentLanguage = () => language;
export function setLanguage(value) {
  language = value in STRINGS ? value : "en";
  localStorage.setItem("liaison.lang", language);
  document.documentElement.lang = language;
}

export function t(key, ...args) {
  const value = STRINGS[language][key] ?? STRINGS.en[key] ?? key;
  return typeof value === "function" ? value(...args) : value;
}
