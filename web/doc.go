// Package web holds tenantry's HTML interface: the page templates and the
// stylesheet, embedded in the binary with //go:embed, the Renderer that
// turns a view into a response, and the signed flash cookie that carries a
// one-time message across a Post/Redirect/Get.
//
// The package contract:
//   - A page is a View value (UsersView, EditView, DeleteView, ErrorView).
//     Each View type names its template, so a page cannot be rendered with
//     another page's data. Every value is escaped by html/template.
//   - Render executes the whole template before writing anything, so a
//     template error never leaves half a page behind; the caller decides
//     what to send instead.
//   - Pages need no JavaScript and load nothing from another origin: the
//     Content-Security-Policy they are sent with allows styles and images
//     from their own origin only and no scripts at all.
//   - A Flash is bound to one tenant: its cookie name and its HMAC-SHA256
//     signature both depend on the tenant's name, so a message set by one
//     tenant is neither shown nor consumed by another, even where browsers
//     share cookies between them (cookies ignore ports, so localhost:5000
//     and localhost:8000 see each other's cookies).
//
// Nothing here knows about Gin, the database or tenants beyond a tenant's
// name; package handlers decides what to show and when.
package web
