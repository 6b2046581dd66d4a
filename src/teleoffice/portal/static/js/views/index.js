// The user's pages, in navigation order.

import { renderHome } from "./home.js";
import { renderDial } from "./dial.js";
import { renderCallLog } from "./calllog.js";
import { renderDirectory } from "./directory.js";
import { renderVoicemail } from "./voicemail.js";
import { renderSettings } from "./settings.js";

export const userViews = [
  { path: "#/", title: "nav.home", icon: "home", render: renderHome },
  { path: "#/dial", title: "nav.dial", icon: "dial", render: renderDial },
  { path: "#/calls", title: "nav.calls", icon: "log", render: renderCallLog },
  { path: "#/directory", title: "nav.directory", icon: "people", render: renderDirectory },
  { path: "#/voicemail", title: "nav.voicemail", icon: "voicemail", render: renderVoicemail },
  { path: "#/settings", title: "nav.settings", icon: "settings", render: renderSettings },
];
