// Preloaded (node --import) by bench/stream-bench.sh before the Portkey
// gateway: its start-up script listens on every interface and has no
// option for the address, and our benchmarks listen on 127.0.0.1 only.
// A listen() call given a port and no host gets host 127.0.0.1.
import net from 'node:net';

const listen = net.Server.prototype.listen;

net.Server.prototype.listen = function (...args) {
    if (typeof args[0] === 'number'
        && (args.length === 1 || typeof args[1] !== 'string')) {
        if (args.length > 1 && args[1] === undefined) {
            args[1] = '127.0.0.1';
        }
        else {
            args.splice(1, 0, '127.0.0.1');
        }
    }
    else if (args[0] && typeof args[0] === 'object' && !args[0].host
             && args[0].port !== undefined) {
        args[0] = { ...args[0], host: '127.0.0.1' };
    }
    return listen.apply(this, args);
};
