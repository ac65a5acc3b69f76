// The API reference: Swagger UI over this server's own /openapi.json. "Authorize" takes an API
// key for the `bearer` scheme the document declares; the dashboard's key is offered first.
"use strict";
const ui = SwaggerUIBundle({
  url: "/openapi.json",
  dom_id: "#swagger",
  deepLinking: true,
  persistAuthorization: false,
  onComplete: () => {
    const key = sessionStorage.getItem("agentfield-arq-key");
    if (!key) return;
    ui.authActions.authorize({
      bearer: { name: "bearer", schema: { type: "http", scheme: "bearer" }, value: key },
    });
  },
});
