// Starts Swagger UI on the daemon's own /openapi.json. A file, not an inline script, so the
// page runs under the daemon's Content-Security-Policy (script-src 'self'). No top bar: the
// documentation shows this daemon's API only, never a URL typed in or given in the query.
"use strict";

window.addEventListener("DOMContentLoaded", () => {
  window.ui = SwaggerUIBundle({
    url: "/openapi.json",
    dom_id: "#swagger-ui",
    deepLinking: true,
    queryConfigEnabled: false,
    presets: [SwaggerUIBundle.presets.apis],
    layout: "BaseLayout",
  });
});
