// The admin pages, after RabbitMQ 3.10's Admin tab: users (tags, password, permissions, topic
// permissions, limits), virtual hosts (metadata, tracing, permissions, limits), policies and
// operator policies, limits, and feature flags. Each page is a module of admin/; the router
// imports them from here.

export { users } from "./admin/users.js";
export { user } from "./admin/user.js";
export { vhosts } from "./admin/vhosts.js";
export { vhost } from "./admin/vhost.js";
export { policies } from "./admin/policies.js";
export { limits } from "./admin/limits.js";
export { featureFlags } from "./admin/feature-flags.js";
