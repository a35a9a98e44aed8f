"use strict";
// User administration (admin): list (GET /api/users), add (POST), change role or password (PATCH),
// delete (DELETE). The server refuses deleting yourself or the last admin; its message is shown.
(() => {
  const P = window.Plant;
  const { $, esc } = P;
  const { roles } = JSON.parse($("#users-config").textContent);
  const me = document.body.dataset.user;
  const message = $("#users-message");
  const error = $("#users-error");
  let users = [];

  const { say, fail } = P.feedback(message, error);
  const userUrl = (name) => `/api/users/${encodeURIComponent(name)}`;

  async function load() {
    const table = $("#users");
    try {
      users = (await P.api("GET", "/api/users")).items || [];
    } catch (err) {
      table.dataset.state = "error";
      fail(`Could not load the users: ${err.message}`);
      return;
    }
    $("#users tbody").innerHTML = users.length ? users.map((u) => {
      const options = roles.map((r) => `<option value="${esc(r)}"${r === u.role ? " selected" : ""}>${esc(r)}</option>`).join("");
      return `<tr data-username="${esc(u.username)}" data-role="${esc(u.role)}">` +
        `<th scope="row" data-label="User">${esc(u.username)}${u.username === me ? " <small>(you)</small>" : ""}</th>` +
        `<td data-label="Role"><label class="visually-hidden" for="role-${esc(u.username)}">Role of ${esc(u.username)}</label>` +
        `<select class="role" id="role-${esc(u.username)}" data-username="${esc(u.username)}">${options}</select></td>` +
        `<td data-label="Created">${P.timeTag(u.created_at)}</td>` +
        `<td data-label="Last log-in">${u.last_login_at ? P.timeTag(u.last_login_at) : "never"}</td>` +
        `<td data-label="API token">${u.has_token ? "yes" : "no"}</td>` +
        `<td class="actions"><button type="button" class="delete danger" data-username="${esc(u.username)}">Delete</button></td></tr>`;
    }).join("") : '<tr class="empty"><td colspan="6">No user.</td></tr>';
    $("#p-name").innerHTML = users.map((u) => `<option value="${esc(u.username)}">${esc(u.username)}</option>`).join("");
    table.dataset.state = "ready";
    table.dataset.count = String(users.length);
  }

  $("#users").addEventListener("change", async (ev) => {
    const select = ev.target.closest("select.role");
    if (!select) return;
    const name = select.dataset.username;
    const before = users.find((u) => u.username === name);
    select.disabled = true;
    try {
      await P.api("PATCH", userUrl(name), { role: select.value });
      say(`${name} is now ${select.value}.`);
      if (name === me) location.reload(); // our own role changed: the page's menu and rights too
      else await load();
    } catch (err) {
      if (before) select.value = before.role;
      select.disabled = false;
      fail(`Role not changed: ${err.message}`);
    }
  });

  $("#users").addEventListener("click", async (ev) => {
    const button = ev.target.closest("button.delete");
    if (!button) return;
    const name = button.dataset.username;
    if (!window.confirm(`Delete the user ${name}?`)) return;
    button.disabled = true;
    try {
      await P.api("DELETE", userUrl(name));
      say(`Deleted ${name}.`);
      await load();
    } catch (err) {
      button.disabled = false;
      fail(`Not deleted: ${err.message}`);
    }
  });

  $("#user-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const form = ev.target;
    const body = { username: form.username.value.trim(), password: form.password.value, role: form.role.value };
    try {
      await P.api("POST", "/api/users", body);
      say(`Added ${body.username} (${body.role}).`);
      form.reset();
      await load();
    } catch (err) {
      fail(`Not added: ${err.message}`);
    }
  });

  $("#password-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const form = ev.target;
    const name = form.username.value;
    try {
      await P.api("PATCH", userUrl(name), { password: form.password.value });
      say(`Password of ${name} changed.`);
      form.password.value = "";
    } catch (err) {
      fail(`Password not changed: ${err.message}`);
    }
  });

  load();
})();
