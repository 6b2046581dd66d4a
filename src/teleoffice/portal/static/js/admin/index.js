// The administrator's pages, in navigation order. main.js shows them (and
// their navigation entries) to administrators only; the API refuses their
// requests from anybody else (403) whatever the page does.

import { renderUsers, renderNewUser, renderUser } from "./users.js";
import { renderPhones } from "./phones.js";
import { renderTrunks, renderNewTrunk, renderTrunk } from "./trunks.js";
import { renderRestrictions, renderNewRestriction, renderRestriction } from "./restrictions.js";
import { renderLive } from "./live.js";

// Pages for a new item have paths of their own ("#/admin/new-user"), not
// "#/admin/users/new", which would be a user named "new".
export const adminViews = [
  { path: "#/admin/live", title: "admin.live.title", icon: "admin-live", admin: true, render: renderLive },
  { path: "#/admin/users", title: "admin.users.title", icon: "admin-users", admin: true, render: renderUsers },
  { path: "#/admin/new-user", title: "admin.users.new_title", admin: true, nav: false, render: renderNewUser },
  { path: "#/admin/users/:name", title: "admin.users.user_title", admin: true, render: renderUser },
  { path: "#/admin/phones", title: "admin.phones.title", icon: "phone", admin: true, render: renderPhones },
  { path: "#/admin/trunks", title: "admin.trunks.title", icon: "admin-trunk", admin: true, render: renderTrunks },
  { path: "#/admin/new-trunk", title: "admin.trunks.new_title", admin: true, nav: false, render: renderNewTrunk },
  { path: "#/admin/trunks/:name", title: "admin.trunks.trunk_title", admin: true, render: renderTrunk },
  { path: "#/admin/restrictions", title: "admin.restrictions.title", icon: "admin-shield", admin: true, render: renderRestrictions },
  { path: "#/admin/new-restriction", title: "admin.restrictions.new_title", admin: true, nav: false, render: renderNewRestriction },
  { path: "#/admin/restrictions/:name", title: "admin.restrictions.profile_title", admin: true, render: renderRestriction },
];
