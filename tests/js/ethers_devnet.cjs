// What a developer does with ethers against a node's /evm: read the network,
// deploy a contract, send a transaction and wait for it, read state and
// events, estimate gas, see a revert. Prints one JSON object for the test.
//
//   node tests/js/ethers_devnet.cjs URL PRIVATE_KEY INIT_CODE_HEX
"use strict";
const { ethers } = require("./vendor/ethers.umd.min.js");

const ABI = [
  "function get() view returns (uint256)",
  "function set(uint256 v)",
  "event Set(uint256 v)",
];

async function main() {
  const [url, key, init] = process.argv.slice(2);
  const provider = new ethers.JsonRpcProvider(url);
  provider.pollingInterval = 200;
  const wallet = new ethers.Wallet(key, provider);
  // ethers keeps an answer to the same request for 250 ms; the devnet makes a
  // block faster than that, so a second "pending" nonce could be the first one.
  // NonceManager counts the nonces locally, as ethers' docs advise for
  // transactions sent one after another.
  const signer = new ethers.NonceManager(wallet);
  const network = await provider.getNetwork();
  const balance = await provider.getBalance(wallet.address);
  const fees = await provider.getFeeData();
  const factory = new ethers.ContractFactory(ABI, init, signer);
  const contract = await factory.deploy();
  await contract.waitForDeployment();
  const address = await contract.getAddress();
  const code = await provider.getCode(address);
  const sent = await contract.set(42n);
  const receipt = await sent.wait();
  const value = await contract.get();
  const events = await contract.queryFilter("Set", receipt.blockNumber, receipt.blockNumber);
  const estimate = await contract.set.estimateGas(7n);
  let revert = null;
  try {
    await provider.call({ to: address, data: "0xdeadbeef" });
  } catch (err) {
    revert = err.code;
  }
  const block = await provider.getBlock(receipt.blockNumber);
  const nonce = await provider.getTransactionCount(wallet.address);
  console.log(
    JSON.stringify({
      chainId: network.chainId.toString(),
      address: wallet.address,
      balance: balance.toString(),
      maxFeePerGas: fees.maxFeePerGas === null ? null : fees.maxFeePerGas.toString(),
      contract: address,
      codeBytes: (code.length - 2) / 2,
      status: receipt.status,
      value: value.toString(),
      events: events.map((e) => e.args[0].toString()),
      estimate: estimate.toString(),
      revert,
      txInBlock: block.transactions.includes(sent.hash),
      nonce,
    }),
  );
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
