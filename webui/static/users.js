"use strict";
// User administration (admin): list (GET /api/users), add (POST), change role or password (PATCH),
// delete (DELETE). The server refuses deleting yourself or the last admin; its message is shown.
(() => {
  const P = window.Plant;
  const { $, esc } = P;
  const { roles, languages } = JSON.parse($("#users-config").textContent);
  const me = document.body.dataset.user;
  const message = $("#users-message");
  const error = $("#users-error");
  let users = [];

  const { say, fail } = P.feedback(message, error);
  const userUrl = (name) => `/api/users/${encodeURIComponent(name)}`;
  // The roles as people read them (the codes stay the options' values and the API's).
  const ROLE_TEXT = { viewer: _("viewer"), operator: _("operator"), admin: _("admin") };
  const roleText = (r) => ROLE_TEXT[r] || String(r ?? "");
  // Column names, repeated on each cell for the phone layout (data-label).
  const L = {
    user: _("User"), role: _("Role"), language: _("Language"), created: _("Created"), lastLogin: _("Last log-in"),
    token: _("API token"),
  };
  // A user's language: one of ours (named in itself), or automatic (null: the browser's, else the plant's).
  const languageOptions = (current) => [["", _("automatic")], ...Object.entries(languages)].map(([code, name]) =>
    `<option value="${esc(code)}"${code ? ` lang="${esc(code)}"` : ""}${code === (current || "") ? " selected" : ""}>${esc(name)}</option>`).join("");
  const dl = (key) => `data-label="${esc(L[key])}"`;

  async function load() {
    const table = $("#users");
    try {
      users = (await P.api("GET", "/api/users")).items || [];
    } catch (err) {
      table.dataset.state = "error";
      fail(_("Could not load the users: {error}", { error: err.message }));
      return;
    }
    $("#users tbody").innerHTML = users.length ? users.map((u) => {
      const options = roles.map((r) => `<option value="${esc(r)}"${r === u.role ? " selected" : ""}>${esc(roleText(r))}</option>`).join("");
      return `<tr data-username="${esc(u.username)}" data-role="${esc(u.role)}">` +
        `<th scope="row" ${dl("user")}>${esc(u.username)}${u.username === me ? ` <small>${esc(_("(you)"))}</small>` : ""}</th>` +
        `<td ${dl("role")}><label class="visually-hidden" for="role-${esc(u.username)}">${esc(_("Role of {user}", { user: u.username }))}</label>` +
        `<select class="role" data-field="role" id="role-${esc(u.username)}" data-username="${esc(u.username)}">${options}</select></td>` +
        `<td ${dl("language")}><label class="visually-hidden" for="language-${esc(u.username)}">${esc(_("Language of {user}", { user: u.username }))}</label>` +
        `<select class="language" data-field="language" id="language-${esc(u.username)}" data-username="${esc(u.username)}">${languageOptions(u.language)}</select></td>` +
        `<td ${dl("created")}>${P.timeTag(u.created_at)}</td>` +
        `<td ${dl("lastLogin")}>${u.last_login_at ? P.timeTag(u.last_login_at) : esc(_("never"))}</td>` +
        `<td ${dl("token")}>${esc(u.has_token ? _("yes") : _("no"))}</td>` +
        `<td class="actions"><button type="button" class="delete danger" data-username="${esc(u.username)}">${esc(_("Delete"))}</button></td></tr>`;
    }).join("") : `<tr class="empty"><td colspan="7">${esc(_("No user."))}</td></tr>`;
    $("#p-name").innerHTML = users.map((u) => `<option value="${esc(u.username)}">${esc(u.username)}</option>`).join("");
    table.dataset.state = "ready";
    table.dataset.count = String(users.length);
  }

  // A row's role or language select: PATCHed at once; our own change reloads the page (its menu and
  // rights, or its language, change too); a refusal puts the select back.
  const ROW_FIELDS = {
    role: {
      body: (v) => ({ role: v }), was: (u) => u.role,
      done: (user, v) => _("{user} is now {role}.", { user, role: roleText(v) }),
      failed: (error) => _("Role not changed: {error}", { error }),
    },
    language: {
      body: (v) => ({ language: v || null }), was: (u) => u.language || "",
      done: (user) => _("Language of {user} changed.", { user }),
      failed: (error) => _("Language not changed: {error}", { error }),
    },
  };
  $("#users").addEventListener("change", async (ev) => {
    const select = ev.target.closest("select[data-field]");
    if (!select) return;
    const field = ROW_FIELDS[select.dataset.field];
    const name = select.dataset.username;
    const before = users.find((u) => u.username === name);
    select.disabled = true;
    try {
      await P.api("PATCH", userUrl(name), field.body(select.value));
      say(field.done(name, select.value));
      if (name === me) location.reload();
      else await load();
    } catch (err) {
      if (before) select.value = field.was(before);
      select.disabled = false;
      fail(field.failed(err.message));
    }
  });

  $("#users").addEventListener("click", async (ev) => {
    const button = ev.target.closest("button.delete");
    if (!button) return;
    const name = button.dataset.username;
    if (!window.confirm(_("Delete the user {user}?", { user: name }))) return;
    button.disabled = true;
    try {
      await P.api("DELETE", userUrl(name));
      say(_("Deleted {user}.", { user: name }));
      await load();
    } catch (err) {
      button.disabled = false;
      fail(_("Not deleted: {error}", { error: err.message }));
    }
  });

  $("#user-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const form = ev.target;
    const body = { username: form.username.value.trim(), password: form.password.value, role: form.role.value,
      language: form.language.value || null };
    try {
      await P.api("POST", "/api/users", body);
      say(_("Added {user} ({role}).", { user: body.username, role: roleText(body.role) }));
      form.reset();
      await load();
    } catch (err) {
      fail(_("Not added: {error}", { error: err.message }));
    }
  });

  $("#password-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const form = ev.target;
    const name = form.username.value;
    try {
      await P.api("PATCH", userUrl(name), { password: form.password.value });
      say(_("Password of {user} changed.", { user: name }));
      form.password.value = "";
    } catch (err) {
      fail(_("Password not changed: {error}", { error: err.message }));
    }
  });

  load();
})();
