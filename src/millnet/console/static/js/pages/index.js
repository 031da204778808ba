// The console's pages, in nav order. A page: {name, title, nav, area, render(main, args, ctx)}
// where `area` (optional) is what the node must serve (GET /me `areas`), and render
// returns a cleanup function or nothing. docs/console.md: how to add one.

import * as alarms from "./alarms.js";
import * as device from "./device.js";
import * as identifiers from "./identifiers.js";
import * as oee from "./oee.js";
import * as orders from "./orders.js";
import * as situation from "./situation.js";
import * as tree from "./tree.js";

export const PAGES = [
  { name: "tree", title: "Plant", nav: true, area: "assets", render: tree.render },
  { name: "device", title: "Device", nav: false, area: "assets", render: device.render },
  { name: "alarms", title: "Alarms", nav: true, area: "alarms", render: alarms.render },
  { name: "oee", title: "OEE", nav: true, area: "kpi", render: oee.render },
  { name: "identifiers", title: "Identifiers", nav: true, area: "identifiers",
    render: identifiers.render },
  { name: "situation", title: "Situation", nav: true, area: "situation",
    render: situation.render },
  { name: "orders", title: "Advisories & orders", nav: true, area: "federation",
    render: orders.render },
];
