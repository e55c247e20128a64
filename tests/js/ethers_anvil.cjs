// A hardhat-style test flow with ethers against `focusflow devnet --anvil`: the
// signer is the node's first unlocked account (no private key here), a
// contract is deployed and called, its event read through a polled filter,
// the state snapshot and reverted, time moved and mined, the call traced and
// its storage proven. Prints one JSON object for the test.
//
//   node tests/js/ethers_anvil.cjs URL INIT_CODE_HEX
"use strict";
const { ethers } = require("./vendor/ethers.umd.min.js");

const ABI = [
  "function get() view returns (uint256)",
  "function set(uint256 v)",
  "event Set(uint256 v)",
];

async function main() {
  const [url, init] = process.argv.slice(2);
  const provider = new ethers.JsonRpcProvider(url);
  provider.pollingInterval = 100;
  const signer = await provider.getSigner(0);
  const factory = new ethers.ContractFactory(ABI, init, signer);
  const contract = await factory.deploy();
  await contract.waitForDeployment();
  const address = await contract.getAddress();

  // Events through a polled filter, as eth_newFilter/eth_getFilterChanges.
  const topic = contract.interface.getEvent("Set").topicHash;
  const filterId = await provider.send("eth_newFilter", [{ address, topics: [topic] }]);
  await (await contract.set(42n)).wait();
  const changes = await provider.send("eth_getFilterChanges", [filterId]);
  const events = changes.map((log) => contract.interface.parseLog(log).args[0].toString());
  await provider.send("eth_uninstallFilter", [filterId]);
  const value = (await contract.get()).toString();

  // Snapshot, change, revert: the value is back.
  const snapshot = await provider.send("evm_snapshot", []);
  await (await contract.set(7n)).wait();
  await provider.send("evm_revert", [snapshot]);
  const reverted = (await contract.get()).toString();
  const sent = await contract.set(43n);
  const receipt = await sent.wait();
  const changed = (await contract.get()).toString();

  // Time travel: two hours ahead, then a block.
  // (Raw requests: ethers keeps an answer to the same request for 250 ms.)
  const latest = async () =>
    Number((await provider.send("eth_getBlockByNumber", ["latest", false])).timestamp);
  const before = await latest();
  await provider.send("evm_increaseTime", [7200]);
  await provider.send("evm_mine", []);
  const after = await latest();

  const trace = await provider.send("debug_traceTransaction", [receipt.hash]);
  const proof = await provider.send("eth_getProof", [address, [ethers.ZeroHash], "latest"]);
  const block = await provider.send("eth_getBlockByNumber", [proof.focusflow.height, false]);
  console.log(
    JSON.stringify({
      signer: await signer.getAddress(),
      value,
      events,
      reverted,
      changed,
      timeMoved: after - before,
      ops: [...new Set(trace.structLogs.map((step) => step.op))],
      stateRoot: block.stateRoot,
      slotProof: proof.focusflow.proofs[2],
    }),
  );
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
