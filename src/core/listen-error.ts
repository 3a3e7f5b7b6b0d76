/**
 * A listener that cannot bind, said in one line that names the config key and the fix
 * (serve prints it and exits; no stack trace reaches the operator).
 */
export function listenError(key: string, entry: string, err: NodeJS.ErrnoException): Error {
  const why = err.code === 'EADDRINUSE' ? `address already in use: another server holds the port (stop it, or change ${key})`
    : err.code === 'EACCES' ? 'permission denied: ports below 1024 need root or CAP_NET_BIND_SERVICE (the systemd unit grants it), or listen on a port above 1023 and redirect'
    : err.code === 'EADDRNOTAVAIL' ? `the address is not one of this host's (use 0.0.0.0, [::] or an address the host has, in ${key})`
    : err.message;
  return new Error(`${key}: cannot listen on ${entry}: ${why}`);
}
