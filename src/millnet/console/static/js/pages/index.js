// The console's pages, in nav order. A page: {name, title, nav, area, render(main, args, ctx)}
// where `area` (optional) is what the node must serve (GET /me `areas`), and render
// returns a cleanup function or nothing. docs/console.md: how to add one.

import * as device from "./device.js";
import * as tree from "./tree.js";

export const PAGES = [
  { name: "tree", title: "Plant", nav: true, render: tree.render },
  { name: "device", title: "Device", nav: false, render: device.render },
];
